"""ItemKNN: item-based collaborative filtering with shrunk cosine similarity and top-k neighbours.

sim(i, j) = (x_i · x_j) / (‖x_i‖ ‖x_j‖ + shrink) over the binary item columns of the training matrix, with
sim(i, i) = 0. For each item j only its `k` most similar items i keep their weight (column-wise top-k), and
a user's score of j is the sum of sim(i, j) over the items i in their training profile.
"""

from __future__ import annotations

import logging
from typing import Self

import numpy as np
import scipy.sparse as sp

from model.data.interactions import Interactions
from model.data.split import HeldOut
from model.item_item import ItemItemRecommender

logger = logging.getLogger(__name__)


def shrunk_cosine(train: sp.csr_matrix, shrink: float) -> np.ndarray:
    """Dense (n_items, n_items) float32 shrunk cosine of the columns of `train`, zero diagonal."""
    co = (train.T @ train).toarray().astype(np.float64)
    norms = np.sqrt(np.diag(co))
    sim = co / (np.outer(norms, norms) + shrink + 1e-12)
    np.fill_diagonal(sim, 0.0)
    return sim.astype(np.float32)


def keep_top_k(sim: np.ndarray, k: int) -> sp.csr_matrix:
    """CSR copy of `sim` (n, n) keeping, in each column, the k largest entries (ties broken arbitrarily)."""
    n = sim.shape[0]
    k = min(k, n)
    rows = np.argpartition(-sim, k - 1, axis=0)[:k]  # (k, n) row index of the top-k per column
    cols = np.broadcast_to(np.arange(n), rows.shape)
    values = sim[rows, cols]
    keep = values > 0
    return sp.csr_matrix((values[keep], (rows[keep], cols[keep])), shape=sim.shape, dtype=np.float32)


class ItemKNN(ItemItemRecommender):
    """Item-based kNN with shrunk cosine.

    Args:
        k: neighbours kept per item (chosen on ML-1M validation).
        shrink: shrinkage term added to the cosine denominator (chosen on ML-1M validation).
        chunk_users: users per dense block when scoring pairs.
    """

    def __init__(self, k: int = 50, shrink: float = 0.0, chunk_users: int = 1024) -> None:
        self.k = k
        self.shrink = shrink
        self.chunk_users = chunk_users

    def fit(self, train: Interactions, validation: HeldOut | None = None) -> Self:
        self.n_users, self.n_items = train.n_users, train.n_items
        self.train_ = train.to_csr()
        self.weights_ = keep_top_k(shrunk_cosine(self.train_, self.shrink), self.k)
        logger.info("ItemKNN fitted: %d items, k=%d, shrink=%g", self.n_items, self.k, self.shrink)
        return self
