"""`ItemItemRecommender`: shared scoring of item-to-item models (ItemKNN, EASE^R).

A user's scores are their training row times an item-item weight matrix: scores = X[u] @ W, with X the
(n_users, n_items) training matrix (binary, or recency-weighted: `weighted_csr`) and W (n_items, n_items),
dense or sparse.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from model.base import Recommender


class ItemItemRecommender(Recommender):
    """Scores with `train_` (n_users, n_items) CSR and `weights_` (n_items, n_items) set by `fit`.

    Args of subclasses include `chunk_users`: users per dense block when scoring pairs (memory:
    chunk_users * n_items float32).
    """

    train_: sp.csr_matrix
    weights_: np.ndarray | sp.csr_matrix
    chunk_users: int = 1024

    def score_users(self, user_idx: np.ndarray) -> np.ndarray:
        """(n,) int users -> (n, n_items) float32."""
        scores = self.train_[np.asarray(user_idx)] @ self.weights_
        if sp.issparse(scores):
            scores = scores.toarray()
        return np.asarray(scores, dtype=np.float32)

    def score(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        """(n,) int pairs -> (n,) float32: whole rows for each distinct user, in blocks, then gathered."""
        user_idx = np.asarray(user_idx)
        item_idx = np.asarray(item_idx)
        unique, inverse = np.unique(user_idx, return_inverse=True)
        order = np.argsort(inverse, kind="stable")
        bounds = np.searchsorted(
            inverse[order], np.arange(0, unique.shape[0] + self.chunk_users, self.chunk_users)
        )
        out = np.empty(user_idx.shape[0], dtype=np.float32)
        for block, start in enumerate(range(0, unique.shape[0], self.chunk_users)):
            rows = self.score_users(unique[start : start + self.chunk_users])
            pairs = order[bounds[block] : bounds[block + 1]]
            out[pairs] = rows[inverse[pairs] - start, item_idx[pairs]]
        return out
