"""Top-N unrated items per user from a chunk of full score rows: mask rated items, argpartition, sort N.

Memory: the caller's (c, n_items) float32 score matrix is masked in place; the selection adds (c, N) int64
indices and (c, N) float32 scores, nothing of size n_items beyond the input.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def mask_rated(scores: np.ndarray, rated: sp.csr_matrix) -> np.ndarray:
    """Set scores of rated items to -inf in place.

    Args:
        scores: (c, n_items) float32, one row per user of the chunk (writable).
        rated: (c, n_items) CSR of the same users' rated items.

    Returns:
        (c,) int64 number of unrated items per row.
    """
    rows = np.repeat(np.arange(scores.shape[0]), np.diff(rated.indptr))
    scores[rows, rated.indices] = -np.inf
    return scores.shape[1] - np.diff(rated.indptr).astype(np.int64)


def top_n(scores: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The n highest scores of each row, best first (ties: lower item index first).

    Args:
        scores: (c, n_items) float32.

    Returns:
        (items (c, k) int64, top scores (c, k) float32) with k = min(n, n_items).
    """
    k = min(n, scores.shape[1])
    if k < scores.shape[1]:
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    else:
        part = np.broadcast_to(np.arange(scores.shape[1]), scores.shape).copy()
    part.sort(axis=1)  # item order breaks ties deterministically in the stable sort below
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-part_scores, axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1), np.take_along_axis(part_scores, order, axis=1)
