"""Row-wise (sparse) gradient aggregation for embedding tables.

A batch touches each table row zero, one or several times; the gradient of a row is the sum of its
per-example gradients. `np.add.at` does this but is slow, and `np.add.reduceat` over sorted rows is not
much better for narrow rows. Here the indices are sorted once (a radix sort when they fit in 16 bits) and
the sum is a sparse (touched rows x B) 0/1 matrix times the (B, w) gradients, which scipy runs in one C
loop: O(B * w), and only the touched rows come out. The engine calls scipy's compiled CSR-times-dense
kernel directly when it can (`scipy.sparse._sparsetools`, a private module): building a `csr_matrix`
and going through its `@` dispatch cost ~45 us and ~10 us of Python per selector and product, as much as
the sums themselves; without the module the public `csr_matrix` product gives the same sums.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

try:
    from scipy.sparse._sparsetools import csr_matvecs as _csr_matvecs
except ImportError:  # pragma: no cover - a private module; the public product below is the fallback
    _csr_matvecs = None


class RowSelector:
    """The (u, n) 0/1 matrix, in CSR form, with selector[r, j] = 1 when example j is on the r-th touched
    row: `selector @ values` sums (n, w) per-example values into (u, w), in the values' dtype."""

    def __init__(self, indptr: np.ndarray, order: np.ndarray, n: int) -> None:
        # CSR row pointers and column indices, int32 when n allows (scipy's kernel is ~10% faster with
        # 32-bit indices than with 64-bit ones)
        self.indptr, self.order = indptr, order
        self.shape = (indptr.shape[0] - 1, n)
        self._ones: dict[np.dtype, np.ndarray] = {}  # the matrix' values, by dtype (shared by products)

    def __matmul__(self, values: np.ndarray) -> np.ndarray:
        out = np.zeros((self.shape[0], values.shape[1]), dtype=values.dtype)
        self.add_product(values, out)
        return out

    def add_product(self, values: np.ndarray, out: np.ndarray) -> None:
        """out += self @ values, in place: (n, w) values into C-contiguous (u, w) `out` of their dtype
        (scipy's kernel accumulates into its output, so this costs no more than the product alone)."""
        values = np.ascontiguousarray(values)
        ones = self._ones.get(values.dtype)
        if ones is None:
            ones = self._ones[values.dtype] = np.empty(self.shape[1], dtype=values.dtype)
            ones.fill(1)
        if _csr_matvecs is None:
            out += sp.csr_matrix((ones, self.order, self.indptr), shape=self.shape) @ values
            return
        if (
            not out.flags.c_contiguous
            or out.dtype != values.dtype
            or out.shape != (self.shape[0], values.shape[1])
        ):
            raise ValueError("add_product needs a C-contiguous output of the values' dtype and (rows, width)")
        rows, n = self.shape
        _csr_matvecs(rows, n, values.shape[1], self.indptr, self.order, ones, values.ravel(), out.ravel())


def row_selector(indices: np.ndarray) -> tuple[np.ndarray, RowSelector]:
    """The touched rows of `indices` and the 0/1 matrix that sums per-example gradients into them.

    Args:
        indices: (B,) int table row of each example.

    Returns:
        (rows (u,) int64 sorted unique rows, selector (u, B) 0/1 matrix with selector[r, j] = 1 when
        example j is on rows[r]); `selector @ row_grads` sums (B, w) per-example gradients into (u, w).
        One selector serves several gradient arrays (e.g. the gradients and their squares).
    """
    n = indices.shape[0]
    # NumPy's stable sort is a radix sort for 16-bit keys: ~10x faster than for int32 / int64 keys.
    keys = indices.astype(np.uint16) if indices.size and int(indices.max()) < 1 << 16 else indices
    order = keys.argsort(kind="stable")
    sorted_idx = indices[order]
    is_start = np.empty(n, dtype=bool)
    is_start[:1] = True
    np.not_equal(sorted_idx[1:], sorted_idx[:-1], out=is_start[1:])
    starts = is_start.nonzero()[0]
    index = np.int32 if n < 1 << 31 else np.int64
    indptr = np.empty(starts.shape[0] + 1, dtype=index)
    indptr[:-1], indptr[-1] = starts, n
    return sorted_idx[starts].astype(np.int64), RowSelector(indptr, order.astype(index), n)


def sum_rows(indices: np.ndarray, row_grads: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sum per-example gradients by table row.

    Args:
        indices: (B,) int table row of each example.
        row_grads: (B, w) gradient of each example's gathered row.

    Returns:
        (rows (u,) int64 sorted unique rows, grads (u, w) summed gradient of each, same dtype as row_grads).
    """
    rows, selector = row_selector(indices)
    return rows, selector @ row_grads
