"""Sanity floors: `ItemPop` (training popularity) and `RandomModel` (uniform scores)."""

from __future__ import annotations

from typing import Self

import numpy as np

from model.base import Recommender
from model.data.interactions import Interactions
from model.data.split import HeldOut


class ItemPop(Recommender):
    """Score = number of training interactions of the item, the same for every user."""

    def fit(self, train: Interactions, validation: HeldOut | None = None) -> Self:
        self.n_users, self.n_items = train.n_users, train.n_items
        self.popularity_ = train.item_counts().astype(np.float32)
        return self

    def score(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        return self.popularity_[np.asarray(item_idx)]

    def score_users(self, user_idx: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.popularity_, (np.asarray(user_idx).shape[0], self.n_items)).copy()


class RandomModel(Recommender):
    """Uniform random scores, fixed per (user, item) for a given seed (a hash, not a draw per call).

    Args:
        seed: mixed into the hash of each (user, item) pair.
    """

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def fit(self, train: Interactions, validation: HeldOut | None = None) -> Self:
        self.n_users, self.n_items = train.n_users, train.n_items
        return self

    def score(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        # SplitMix64-style mixing of (seed, user, item) -> uniform [0, 1).
        x = (
            np.asarray(user_idx, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
            ^ np.asarray(item_idx, dtype=np.uint64) * np.uint64(0xBF58476D1CE4E5B9)
            ^ np.uint64(self.seed * 0x94D049BB133111EB & 0xFFFFFFFFFFFFFFFF)  # wraps as uint64, no warning
        )
        x ^= x >> np.uint64(31)
        x *= np.uint64(0xBF58476D1CE4E5B9)
        x ^= x >> np.uint64(29)
        return ((x >> np.uint64(40)).astype(np.float32) / np.float32(2**24)).astype(np.float32)
