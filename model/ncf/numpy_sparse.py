"""Row-wise (sparse) gradient aggregation for embedding tables.

A batch touches each table row zero, one or several times; the gradient of a row is the sum of its
per-example gradients. `np.add.at` does this but is slow; sorting the indices once and summing contiguous
runs with `np.add.reduceat` costs O(B log B + B * width) and returns only the touched rows.
"""

from __future__ import annotations

import numpy as np


def sum_rows(indices: np.ndarray, row_grads: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sum per-example gradients by table row.

    Args:
        indices: (B,) int table row of each example.
        row_grads: (B, w) gradient of each example's gathered row.

    Returns:
        (rows (u,) int64 sorted unique rows, grads (u, w) summed gradient of each, same dtype as row_grads).
    """
    order = np.argsort(indices, kind="stable")
    sorted_idx = indices[order]
    starts = np.flatnonzero(np.r_[True, sorted_idx[1:] != sorted_idx[:-1]])
    return sorted_idx[starts].astype(np.int64), np.add.reduceat(row_grads[order], starts, axis=0)
