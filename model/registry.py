"""Model names the CLI and the batch job accept, mapped to factories (imports stay lazy, so naming a
model never pulls in TensorFlow unless that model needs it)."""

from __future__ import annotations

from collections.abc import Callable

from model.base import Recommender


def _itempop(**_options: object) -> Recommender:
    from model.baselines import ItemPop

    return ItemPop()


def _random(**_options: object) -> Recommender:
    from model.baselines import RandomModel

    return RandomModel()


def _ncf(kind: str) -> Callable[..., Recommender]:
    def factory(
        engine: str = "keras",
        config: dict | None = None,
        train_config: dict | None = None,
        **_options: object,
    ) -> Recommender:
        """An NCF model of `kind` on `engine`; `config` / `train_config` override NCFConfig / TrainConfig
        fields (validated by pydantic)."""
        from model.ncf.base import engine_class
        from model.ncf.config import NCFConfig, TrainConfig

        ncf_config = NCFConfig(**{**(config or {}), "kind": kind})
        return engine_class(engine)(ncf_config, TrainConfig(**(train_config or {})))

    return factory


MODELS: dict[str, Callable[..., Recommender]] = {
    "itempop": _itempop,
    "random": _random,
    "gmf": _ncf("gmf"),
    "mlp": _ncf("mlp"),
    "neumf": _ncf("neumf"),
}


def build_model(name: str, **options: object) -> Recommender:
    """A fresh, unfitted model by CLI name; `options` go to the factory (the baselines ignore them).

    NCF models (gmf, mlp, neumf) take `engine` ("keras" | "numpy"), `config` (NCFConfig fields) and
    `train_config` (TrainConfig fields).
    """
    try:
        factory = MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose from {sorted(MODELS)}") from None
    return factory(**options)
