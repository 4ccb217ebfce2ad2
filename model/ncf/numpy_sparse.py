"""Row-wise (sparse) gradient aggregation for embedding tables.

A batch touches each table row zero, one or several times; the gradient of a row is the sum of its
per-example gradients. `np.add.at` does this but is slow, and `np.add.reduceat` over sorted rows is not
much better for narrow rows. Here the indices are sorted once (a radix sort when they fit in 16 bits) and
the sum is a sparse (touched rows x B) 0/1 matrix times the (B, w) gradients, which scipy runs in one C
loop: O(B * w), and only the touched rows come out.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def row_selector(indices: np.ndarray) -> tuple[np.ndarray, sp.csr_matrix]:
    """The touched rows of `indices` and the 0/1 matrix that sums per-example gradients into them.

    Args:
        indices: (B,) int table row of each example.

    Returns:
        (rows (u,) int64 sorted unique rows, selector (u, B) CSR with selector[r, j] = 1 when example j
        is on rows[r]); `selector @ row_grads` sums (B, w) per-example gradients into (u, w). One selector
        serves several gradient arrays (e.g. the gradients and their squares, each contiguous).
    """
    n = indices.shape[0]
    # NumPy's stable sort is a radix sort for 16-bit keys: ~10x faster than for int32 / int64 keys.
    keys = indices.astype(np.uint16) if indices.size and int(indices.max()) < 1 << 16 else indices
    order = np.argsort(keys, kind="stable")
    sorted_idx = indices[order]
    is_start = np.empty(n, dtype=bool)
    is_start[:1] = True
    np.not_equal(sorted_idx[1:], sorted_idx[:-1], out=is_start[1:])
    starts = np.flatnonzero(is_start)
    indptr = np.append(starts, n)
    ones = np.ones(n, dtype=np.float32)
    selector = sp.csr_matrix((ones, order, indptr), shape=(starts.shape[0], n))
    return sorted_idx[starts].astype(np.int64), selector


def sum_rows(indices: np.ndarray, row_grads: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sum per-example gradients by table row.

    Args:
        indices: (B,) int table row of each example.
        row_grads: (B, w) gradient of each example's gathered row.

    Returns:
        (rows (u,) int64 sorted unique rows, grads (u, w) summed gradient of each, same dtype as row_grads).
    """
    rows, selector = row_selector(indices)
    return rows, np.asarray(selector @ row_grads)  # float32 selector: keeps float32 / float64
