"""Model names the CLI and the batch job accept, each with its settings model and factory, and the NCF
engines by name.

Every model is built from validated settings: the NCF models from `NCFConfig` / `TrainConfig`, every other
model from a pydantic model generated from its constructor (one default per setting: the constructor's,
one description: its docstring's `Args:` entry). Imports of model classes stay lazy where they are heavy:
the Keras engine (TensorFlow) is imported only when a Keras model is built or loaded.
"""

from __future__ import annotations

import importlib
import inspect
import re
from dataclasses import dataclass
from functools import cache
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model

from model.base import Recommender, constructor_parameters
from model.ncf.config import NCFConfig, TrainConfig

ENGINES = {"keras": "model.ncf.keras_engine.KerasNCF", "numpy": "model.ncf.numpy_engine.NumpyNCF"}
NCF_KINDS = ("gmf", "mlp", "neumf")


@dataclass(frozen=True)
class ModelSpec:
    """A registered model: its class (dotted path) or, for the NCF models, its kind."""

    path: str | None = None
    ncf_kind: str | None = None


MODELS: dict[str, ModelSpec] = {
    "itempop": ModelSpec("model.baselines.ItemPop"),
    "random": ModelSpec("model.baselines.RandomModel"),
    "itemknn": ModelSpec("model.knn.ItemKNN"),
    "bpr": ModelSpec("model.bpr.BPR"),
    "ials": ModelSpec("model.als.IALS"),
    "eals": ModelSpec("model.eals.EALS"),
    "ease": ModelSpec("model.ease.EASE"),
    "neumf_blend": ModelSpec("model.blend.NeuMFBlend"),
    **{kind: ModelSpec(ncf_kind=kind) for kind in NCF_KINDS},
}


def _import(path: str) -> Any:
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def engine_class(engine: str) -> type:
    """The `NCFModel` subclass of an engine name ("keras" | "numpy"); imported on demand."""
    try:
        return _import(ENGINES[engine])
    except KeyError:
        raise ValueError(f"unknown engine {engine!r}; choose from {sorted(ENGINES)}") from None


def _arg_docs(cls: type) -> dict[str, str]:
    """`name: description` entries of the `Args:` section of a class docstring (continuations joined)."""
    doc = inspect.getdoc(cls) or ""
    section = doc.partition("Args:")[2]
    docs: dict[str, str] = {}
    name = None
    for line in section.splitlines():
        if match := re.match(r"^    (\w+): (.*)$", line):
            name = match[1]
            docs[name] = match[2].strip()
        elif line.startswith("        ") and name:
            docs[name] += " " + line.strip()
        elif line.strip():
            break
    return docs


@cache
def settings_model(name: str) -> type[BaseModel]:
    """The settings of a non-NCF model, generated from its constructor's arguments (type, default,
    description)."""
    spec = MODELS[name]
    if spec.path is None:
        raise ValueError(f"{name} is an NCF model: its settings are NCFConfig and TrainConfig")
    cls = _import(spec.path)
    docs = _arg_docs(cls)
    fields: dict[str, Any] = {}
    for param in constructor_parameters(cls):
        annotation = param.annotation if param.annotation is not inspect.Parameter.empty else Any
        fields[param.name] = (annotation, Field(param.default, description=docs.get(param.name, "")))
    return create_model(
        f"{cls.__name__}Settings",
        __config__=ConfigDict(extra="forbid", frozen=True),
        __doc__=f"Settings of {cls.__name__} ({spec.path}).",
        **fields,
    )


def settings_models() -> dict[str, type[BaseModel]]:
    """Settings model of every registered non-NCF model that has settings, by name."""
    models = {name: settings_model(name) for name, spec in MODELS.items() if spec.path is not None}
    return {name: model for name, model in models.items() if model.model_fields}


def build_model(name: str, **options: Any) -> Recommender:
    """A fresh, unfitted model by registered name, its options validated by pydantic.

    NCF models (gmf, mlp, neumf) take `engine` ("keras" | "numpy"), `config` (NCFConfig or its fields)
    and `train_config` (TrainConfig or its fields); every other model takes its constructor's arguments
    (`settings_model(name)`). An unknown option is a `pydantic.ValidationError`.
    """
    try:
        spec = MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose from {sorted(MODELS)}") from None
    if spec.ncf_kind is None:
        settings = settings_model(name).model_validate(options)
        return _import(spec.path)(**dict(settings))
    engine = options.pop("engine", "keras")
    config = _as_dict(options.pop("config", None))
    train_config = _as_dict(options.pop("train_config", None))
    if options:
        raise ValueError(f"unknown options for {name}: {sorted(options)}")
    ncf_config = NCFConfig(**{**config, "kind": spec.ncf_kind})
    return engine_class(engine)(ncf_config, TrainConfig(**train_config))


def _as_dict(value: BaseModel | dict | None) -> dict:
    if value is None:
        return {}
    return value.model_dump() if isinstance(value, BaseModel) else dict(value)
