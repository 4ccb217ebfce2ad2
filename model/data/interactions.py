"""`Interactions`: implicit feedback as parallel arrays of dense indices."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp


@dataclass(frozen=True)
class Interactions:
    """Positive (user, item) pairs: every rating counts as 1.

    Row order carries time: a user's rows come oldest first (the loader sorts by user, timestamp, file
    position, the splits keep that order and append newer held-out items after it). Recency weighting in
    training (`NegativeSampler`) relies on it; nothing else does.

    Attributes:
        user_idx: (n,) int32 dense user indices in [0, n_users).
        item_idx: (n,) int32 dense item indices in [0, n_items).
        n_users: size of the user index space (users with no pair here still count).
        n_items: size of the item index space.
    """

    user_idx: np.ndarray
    item_idx: np.ndarray
    n_users: int
    n_items: int

    def __post_init__(self) -> None:
        if self.user_idx.shape != self.item_idx.shape or self.user_idx.ndim != 1:
            raise ValueError("user_idx and item_idx must be 1-D arrays of the same length")

    def __len__(self) -> int:
        return int(self.user_idx.shape[0])

    def to_csr(self) -> sp.csr_matrix:
        """(n_users, n_items) float32 CSR matrix with 1.0 at every pair (rows sorted)."""
        data = np.ones(len(self), dtype=np.float32)
        matrix = sp.csr_matrix((data, (self.user_idx, self.item_idx)), shape=(self.n_users, self.n_items))
        matrix.sum_duplicates()
        matrix.data[:] = 1.0
        return matrix

    def item_counts(self) -> np.ndarray:
        """(n_items,) int64: how many users interacted with each item."""
        return np.bincount(self.item_idx, minlength=self.n_items).astype(np.int64)

    def user_counts(self) -> np.ndarray:
        """(n_users,) int64: how many items each user interacted with."""
        return np.bincount(self.user_idx, minlength=self.n_users).astype(np.int64)
