"""Model names the CLI and the batch job accept, mapped to factories (imports stay lazy, so naming a
model never pulls in TensorFlow unless that model needs it)."""

from __future__ import annotations

from collections.abc import Callable

from model.base import Recommender


def _itempop() -> Recommender:
    from model.baselines import ItemPop

    return ItemPop()


def _random() -> Recommender:
    from model.baselines import RandomModel

    return RandomModel()


def _itemknn() -> Recommender:
    from model.knn import ItemKNN

    return ItemKNN()


def _bpr() -> Recommender:
    from model.bpr import BPR

    return BPR()


def _ials() -> Recommender:
    from model.als import IALS

    return IALS()


def _eals() -> Recommender:
    from model.eals import EALS

    return EALS()


def _ease() -> Recommender:
    from model.ease import EASE

    return EASE()


MODELS: dict[str, Callable[[], Recommender]] = {
    "itempop": _itempop,
    "random": _random,
    "itemknn": _itemknn,
    "bpr": _bpr,
    "ials": _ials,
    "eals": _eals,
    "ease": _ease,
}


def build_model(name: str) -> Recommender:
    """A fresh, unfitted model by CLI name."""
    try:
        factory = MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose from {sorted(MODELS)}") from None
    return factory()
