"""`FactorRecommender`: shared scoring of latent-factor models (score = user factors · item factors)."""

from __future__ import annotations

import numpy as np

from model.base import Recommender


class FactorRecommender(Recommender):
    """Scores with `user_factors_` (n_users, k) and `item_factors_` (n_items, k) float32 set by `fit`."""

    user_factors_: np.ndarray
    item_factors_: np.ndarray

    def score(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        """(n,) int pairs -> (n,) float32 dot products."""
        users = self.user_factors_[np.asarray(user_idx)]
        items = self.item_factors_[np.asarray(item_idx)]
        return np.einsum("nk,nk->n", users, items).astype(np.float32, copy=False)

    def score_users(self, user_idx: np.ndarray) -> np.ndarray:
        """(n,) int users -> (n, n_items) float32."""
        return (self.user_factors_[np.asarray(user_idx)] @ self.item_factors_.T).astype(
            np.float32, copy=False
        )
