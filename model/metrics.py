"""Ranking metrics as pure vectorized functions over score matrices.

Conventions: in a candidate matrix the held-out positive is column 0. A rank is 0-based: the number of
other candidates scored at least as high as the positive, so ties count against the model, and a NaN
score (positive or negative) counts against it too. NDCG uses log base 2 with one relevant item:
1 / log2(rank + 2) when rank < k, else 0; hence NDCG@k <= HR@k for every user.
"""

from __future__ import annotations

import numpy as np


def positive_rank(scores: np.ndarray) -> np.ndarray:
    """Ranks of column 0 among each row's candidates.

    Args:
        scores: (n_users, n_candidates) float array, positive in column 0.

    Returns:
        (n_users,) int64 0-based ranks.
    """
    scores = np.asarray(scores)
    if scores.ndim != 2 or scores.shape[1] < 1:
        raise ValueError(f"scores must be (n_users, n_candidates), got shape {scores.shape}")
    positive = scores[:, :1]
    # not (neg < pos): counts ties and any NaN against the model.
    return np.count_nonzero(~(scores[:, 1:] < positive), axis=1).astype(np.int64)


def hit_rate_at(ranks: np.ndarray, k: int) -> float:
    """HR@k: share of users whose positive ranks in the top k. `ranks`: (n,) 0-based ints."""
    ranks = np.asarray(ranks)
    return float(np.mean(ranks < k)) if ranks.size else float("nan")


def ndcg_at(ranks: np.ndarray, k: int) -> float:
    """NDCG@k with one relevant item: mean of 1/log2(rank + 2) over users with rank < k (else 0)."""
    ranks = np.asarray(ranks)
    if not ranks.size:
        return float("nan")
    gains = np.where(ranks < k, 1.0 / np.log2(ranks.astype(np.float64) + 2.0), 0.0)
    return float(np.mean(gains))


def hit_rate(scores: np.ndarray, k: int = 10) -> float:
    """HR@k of a (n_users, n_candidates) score matrix with the positive in column 0."""
    return hit_rate_at(positive_rank(scores), k)


def ndcg(scores: np.ndarray, k: int = 10) -> float:
    """NDCG@k of a (n_users, n_candidates) score matrix with the positive in column 0."""
    return ndcg_at(positive_rank(scores), k)


def full_rank(scores: np.ndarray, target: np.ndarray, excluded: np.ndarray) -> np.ndarray:
    """Ranks of each row's target item among all items not excluded.

    Args:
        scores: (n_users, n_items) float scores over the whole catalogue.
        target: (n_users,) int item index of each row's held-out positive.
        excluded: (n_users, n_items) bool, True for items that are not negatives (the user's other known
            positives). The target's own cell is ignored whatever it holds.

    Returns:
        (n_users,) int64 0-based ranks (ties and NaN count against the model).
    """
    rows = np.arange(scores.shape[0])
    positive = scores[rows, target][:, None]
    competing = ~(scores < positive) & ~excluded
    competing[rows, target] = False
    return np.count_nonzero(competing, axis=1).astype(np.int64)
