"""Ranking metrics as pure vectorized functions over score matrices.

Conventions: in a candidate matrix the held-out positive is column 0. A rank is 0-based: the number of
other candidates scored at least as high as the positive, so ties count against the model, and a NaN
score (positive or negative) counts against it too. NDCG uses log base 2 with one relevant item:
1 / log2(rank + 2) when rank < k, else 0; hence NDCG@k <= HR@k for every user. Recall@k is the share of a
user's relevant items in the top k; with one held-out item it is 1 or 0, the same as the hit. The
reciprocal rank is 1 / (rank + 1) over the whole ranking, no cut-off; MRR is its mean.

Each metric is defined once, per user (`hits_at`, `ndcg_gains_at`, `reciprocal_ranks`: (n,) float64); the
aggregate figures are their means (NaN for no users).
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


def hits_at(ranks: np.ndarray, k: int) -> np.ndarray:
    """(n,) float64 per-user hit at k: 1.0 where the 0-based rank is below k, else 0.0."""
    return (np.asarray(ranks) < k).astype(np.float64)


def ndcg_gains_at(ranks: np.ndarray, k: int) -> np.ndarray:
    """(n,) float64 per-user NDCG@k with one relevant item: 1 / log2(rank + 2) where rank < k, else 0."""
    ranks = np.asarray(ranks)
    return np.where(ranks < k, 1.0 / np.log2(ranks.astype(np.float64) + 2.0), 0.0)


def recalls_at(ranks: np.ndarray, k: int) -> np.ndarray:
    """(n,) float64 per-user Recall@k with one held-out item per user: the hit at k."""
    return hits_at(ranks, k)


def reciprocal_ranks(ranks: np.ndarray) -> np.ndarray:
    """(n,) float64 per-user reciprocal rank 1 / (rank + 1) of 0-based ranks (no cut-off)."""
    return 1.0 / (np.asarray(ranks).astype(np.float64) + 1.0)


def average(values: np.ndarray) -> float:
    """Mean of per-user values (NaN for no users)."""
    return float(np.mean(values)) if values.size else float("nan")


def hit_rate_at(ranks: np.ndarray, k: int) -> float:
    """HR@k: share of users whose positive ranks in the top k. `ranks`: (n,) 0-based ints."""
    return average(hits_at(ranks, k))


def ndcg_at(ranks: np.ndarray, k: int) -> float:
    """NDCG@k with one relevant item: mean of 1/log2(rank + 2) over users with rank < k (else 0)."""
    return average(ndcg_gains_at(ranks, k))


def recall_at(ranks: np.ndarray, k: int) -> float:
    """Recall@k with one held-out item per user (equal to HR@k)."""
    return average(recalls_at(ranks, k))


def mrr(ranks: np.ndarray) -> float:
    """Mean reciprocal rank of 0-based ranks over the whole ranking (no cut-off)."""
    return average(reciprocal_ranks(ranks))


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
