"""EASE^R (Steck 2019): a closed-form item-item linear autoencoder with a zero diagonal.

With G = XᵀX + λI and P = G⁻¹, the weights are B = I - P · diag(1 / diag(P)), i.e. B_ij = -P_ij / P_jj off
the diagonal and B_jj = 0. One (n_items, n_items) inversion, no iterations.
"""

from __future__ import annotations

import logging
from typing import Self

import numpy as np

from model.data.interactions import Interactions
from model.data.split import HeldOut
from model.item_item import ItemItemRecommender

logger = logging.getLogger(__name__)


def ease_weights(gram: np.ndarray, l2: float) -> np.ndarray:
    """EASE^R weights from a Gram matrix.

    Args:
        gram: (n_items, n_items) XᵀX, float.
        l2: the L2 penalty λ added to the diagonal.

    Returns:
        (n_items, n_items) float64 B with a zero diagonal.
    """
    g = np.array(gram, dtype=np.float64)
    g[np.diag_indices_from(g)] += l2
    p = np.linalg.inv(g)
    b = -p / np.diag(p)[None, :]
    b[np.diag_indices_from(b)] = 0.0
    return b


class EASE(ItemItemRecommender):
    """EASE^R.

    Args:
        l2: L2 penalty λ (chosen on the ML-1M validation item: 1000).
        chunk_users: users per dense block when scoring pairs.
    """

    def __init__(self, l2: float = 1000.0, chunk_users: int = 1024) -> None:
        self.l2 = l2
        self.chunk_users = chunk_users

    def fit(self, train: Interactions, validation: HeldOut | None = None) -> Self:
        self.n_users, self.n_items = train.n_users, train.n_items
        self.train_ = train.to_csr()
        gram = (self.train_.T @ self.train_).toarray()
        self.weights_ = ease_weights(gram, self.l2).astype(np.float32)
        logger.info("EASE^R fitted: %d items, l2=%g", self.n_items, self.l2)
        return self
