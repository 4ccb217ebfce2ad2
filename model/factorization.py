"""`FactorRecommender`: shared scoring of latent-factor models (score = user factors · item factors)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from model.base import Recommender


class FactorRecommender(Recommender):
    """Scores with `user_factors_` (n_users, k) and `item_factors_` (n_items, k) float32 set by `fit`."""

    user_factors_: np.ndarray
    item_factors_: np.ndarray

    def _fit_implicit(self, estimator_class: type, matrix: sp.csr_matrix, **params: object) -> None:
        """Build and fit an `implicit` model (ALS, BPR, ...) on `matrix`, the (n_users, n_items) float32
        training CSR (`Interactions.to_csr()` or `weighted_csr`); keep its factors as float32.

        Both happen under a 1-thread BLAS limit: implicit runs its own threads (and warns at construction
        when BLAS has a thread pool), so a threaded BLAS underneath only slows it down.
        """
        self.n_users, self.n_items = matrix.shape
        with threadpool_limits(1, "blas"):
            estimator = estimator_class(**params)
            estimator.fit(matrix, show_progress=False)
        self.user_factors_ = np.asarray(estimator.user_factors, dtype=np.float32)
        self.item_factors_ = np.asarray(estimator.item_factors, dtype=np.float32)

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
