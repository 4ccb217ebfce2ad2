"""EASE^R (Steck 2019): a closed-form item-item linear autoencoder with a zero diagonal.

With G = XᵀX + λI and P = G⁻¹, the weights are B = I - P · diag(1 / diag(P)), i.e. B_ij = -P_ij / P_jj off
the diagonal and B_jj = 0. One (n_items, n_items) inversion, no iterations. Optionally X holds a larger
value at each user's newest positives (recency weighting, `weighted_csr`), in the Gram matrix and in the
scored rows alike.
"""

from __future__ import annotations

import logging
from typing import Self

import numpy as np

from model.data.interactions import Interactions
from model.data.sampling import weighted_csr
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
        l2: L2 penalty λ (chosen on ML-1M validation).
        chunk_users: users per dense block when scoring pairs.
        recent_fraction: share of each user's newest training positives that get `recent_weight` in X
            (0 = no recency weighting; see `model.data.sampling.recent_mask`).
        recent_weight: value of those entries of X (every other positive is 1; 1 = no weighting).
    """

    def __init__(
        self,
        l2: float = 4000.0,
        chunk_users: int = 1024,
        recent_fraction: float = 0.1,
        recent_weight: float = 4.0,
    ) -> None:
        self.l2 = l2
        self.chunk_users = chunk_users
        self.recent_fraction = recent_fraction
        self.recent_weight = recent_weight

    def fit(self, train: Interactions, validation: HeldOut | None = None) -> Self:
        self.n_users, self.n_items = train.n_users, train.n_items
        self.train_ = weighted_csr(train, self.recent_fraction, self.recent_weight)
        gram = (self.train_.T @ self.train_).toarray()
        self.weights_ = ease_weights(gram, self.l2).astype(np.float32)
        logger.info(
            "EASE^R fitted: %d items, l2=%g, recent %g x%g",
            self.n_items,
            self.l2,
            self.recent_fraction,
            self.recent_weight,
        )
        return self
