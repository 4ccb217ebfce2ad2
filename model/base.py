"""`Recommender`: the contract every model implements, so one evaluator, one CLI and one batch scorer
serve them all (ItemPop, the NeuMF engines, the baselines)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Self

import numpy as np

from model.data.interactions import Interactions
from model.data.split import HeldOut


class Recommender(ABC):
    """Scores (user, item) pairs; higher means more likely to be interacted with.

    Subclasses store hyperparameters in `__init__` only (no data, no training there); `fit` learns from
    training interactions and returns self.
    """

    n_users: int = 0
    n_items: int = 0

    @abstractmethod
    def fit(self, train: Interactions, validation: HeldOut | None = None) -> Self:
        """Learn from `train`. `validation` may be used for early stopping / model selection only."""

    @abstractmethod
    def score(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        """Scores of pairs: user_idx, item_idx (n,) int -> (n,) float32."""

    def score_users(self, user_idx: np.ndarray) -> np.ndarray:
        """Scores of every item for each user: (n,) int -> (n, n_items) float32.

        The default scores the full grid through `score`; models override it with something faster.
        """
        user_idx = np.asarray(user_idx, dtype=np.int32)
        users = np.repeat(user_idx, self.n_items)
        items = np.tile(np.arange(self.n_items, dtype=np.int32), user_idx.shape[0])
        return self.score(users, items).reshape(user_idx.shape[0], self.n_items)
