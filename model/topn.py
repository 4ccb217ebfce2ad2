"""Top-N unrated items per user from a chunk of full score rows: mask rated items, partition, sort N.

Ties are broken by the lower item index, at the cut-off too, so the result is a pure function of the
scores. Memory: the caller's (c, n_items) float32 matrix is masked in place; selection makes a few
temporary (c, n_items) arrays (a float32 partition copy, a bool mask; for rows tied at the cut-off, more
masks and an int32 running count) and the (c, N) results.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import scipy.sparse as sp


def available_cores() -> int:
    """CPU cores this process may use (the default number of scoring and selection threads): the cores it
    may run on, capped by `OMP_NUM_THREADS` when that is a positive integer (Ray sets it to an actor's
    reserved CPUs, so actors sharing a node do not each start a thread per core)."""
    try:
        cores = max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        cores = max(1, os.cpu_count() or 1)
    limit = os.environ.get("OMP_NUM_THREADS", "")
    return min(cores, int(limit)) if limit.isdigit() and int(limit) > 0 else cores


def mask_rated(scores: np.ndarray, rated: sp.csr_matrix) -> np.ndarray:
    """Set scores of rated items to -inf in place.

    Args:
        scores: (c, n_items) float32, one row per user of the chunk (writable).
        rated: (c, n_items) CSR of the same users' rated items.

    Returns:
        (c,) int64 number of unrated items per row.
    """
    per_row = np.diff(rated.indptr)
    scores[np.repeat(np.arange(scores.shape[0]), per_row), rated.indices] = -np.inf
    return scores.shape[1] - per_row.astype(np.int64)


def _top_n_rows(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    n_items = scores.shape[1]
    if k < n_items:
        # The k-th largest score of each row; everything above it is in, and of the items tied with it the
        # lowest indices fill the remaining places (so the result never depends on partition internals).
        kth = np.partition(scores, n_items - k, axis=1)[:, n_items - k, None]
        take = scores >= kth
        # rows with more than k scores >= kth (ties at the cut): the lowest tied indices fill the places
        tied_rows = np.flatnonzero(np.count_nonzero(take, axis=1) > k)
        if tied_rows.size:
            rows, cut = scores[tied_rows], kth[tied_rows]
            above, tied = rows > cut, rows == cut
            need = k - above.sum(axis=1, keepdims=True)
            take[tied_rows] = above | (tied & (np.cumsum(tied, axis=1, dtype=np.int32) <= need))
        part = np.nonzero(take)[1].reshape(-1, k)  # item order within each row
    else:
        part = np.broadcast_to(np.arange(n_items), scores.shape).copy()
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-part_scores, axis=1, kind="stable")  # ties keep item order
    return np.take_along_axis(part, order, axis=1), np.take_along_axis(part_scores, order, axis=1)


def top_n(scores: np.ndarray, n: int, workers: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """The n highest scores of each row, best first (ties: lower item index first).

    Args:
        scores: (c, n_items) float32.
        workers: threads over slices of rows (NumPy releases the GIL in partition and sort).

    Returns:
        (items (c, k) int64, top scores (c, k) float32) with k = min(n, n_items).
    """
    k = min(n, scores.shape[1])
    slices = [s for s in np.array_split(np.arange(scores.shape[0]), workers) if s.size]
    if len(slices) <= 1:
        return _top_n_rows(scores, k)
    with ThreadPoolExecutor(max_workers=len(slices)) as pool:
        parts = list(pool.map(lambda s: _top_n_rows(scores[s[0] : s[-1] + 1], k), slices))
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def select_and_rank(
    scores: np.ndarray,
    n: int,
    exclude: sp.csr_matrix | None,
    held_items: np.ndarray | None,
    workers: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """`Recommender.recommend_and_rank` from a chunk's score rows: excluded items masked, the top `n`
    selected and the held items' full-ranking ranks, from `scores` (c, n_items) float32, a writable array
    the caller gives up (it is masked in place). Returns items (c, k) int64, their scores (c, k) float32,
    (c,) int64 real recommendations per row and the ranks (c,) int64 or None, as that method documents.
    """
    rows = np.arange(scores.shape[0])
    positive = None if held_items is None else scores[rows, np.maximum(held_items, 0)]
    if exclude is None:
        available = np.full(scores.shape[0], scores.shape[1], dtype=np.int64)
    else:
        available = mask_rated(scores, exclude)
    ranks = None
    if positive is not None:
        # Excluded cells (the held item among them) are -inf now: they never count unless the
        # positive is -inf or NaN, when every item not excluded counts against it.
        ranks = np.count_nonzero(~(scores < positive[:, None]), axis=1).astype(np.int64)
        worst = ~(positive > -np.inf)
        ranks[worst] = available[worst]
        ranks[held_items < 0] = -1
    scores[np.isnan(scores)] = -np.inf  # a NaN ranks last, never breaks the selection
    items, best = top_n(scores, n, workers=workers or available_cores())
    return items, best, np.minimum(available, items.shape[1]), ranks
