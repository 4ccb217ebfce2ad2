"""Fast forms of the few array operations the NumPy engine runs on every training step.

Each function computes exactly what its one-line plain form says, bit for bit, only faster for the engine's
shapes (batches of ~2048 rows of 8-64 values):
- `add_row(h, row)`: h += row, and `outer(column, row)`: column[:, None] * row. NumPy runs a broadcast
  over a (B, w) array as one inner-loop call per row, which for w <= 32 costs more than the arithmetic;
  these see the (B, w) block as fewer, longer rows (`_reps`) and repeat `row` to match (~2x faster).
- `relu(h, zeros)`: h = max(h, 0) in place; np.maximum against an array of zeros is ~3x faster than
  against the scalar 0, whose loop NumPy does not vectorise.
- `take_rows`, `take_block_rows`, `put_block_rows`: a[rows], block[:, rows] and block[:, rows] = values,
  copying whole rows (scattered through `row_records`, one opaque record per row: about twice as fast
  as 2-D fancy-index assignment).
"""

from __future__ import annotations

import math

import numpy as np


def _wide(a: np.ndarray, reps: int) -> np.ndarray:
    """C-contiguous (B, w) `a` seen as (B / reps, reps w): the same memory in fewer, longer rows."""
    return a.reshape(a.shape[0] // reps, reps * a.shape[1])


def _reps(batch: int, width: int) -> int:
    """Rows of width `width` to put side by side per long row (a divisor of `batch`, ~256 values long)."""
    return math.gcd(batch, max(1, 256 // max(width, 1)))


def add_row(h: np.ndarray, row: np.ndarray) -> None:
    """h += row for C-contiguous (B, w) `h` and (w,) `row`, in place (~2x faster than the broadcast for
    B = 2048)."""
    reps = _reps(*h.shape)
    wide = _wide(h, reps)
    np.add(wide, row[None].repeat(reps, 0).ravel(), out=wide)


def outer(column: np.ndarray, row: np.ndarray) -> np.ndarray:
    """column[:, None] * row, (B,) x (w,) -> new C-contiguous (B, w): each value of `column` repeated w
    times, times `row` repeated in long rows (~2x faster than the broadcast product)."""
    width = row.shape[0]
    out = column.repeat(width).reshape(-1, width)
    reps = _reps(*out.shape)
    wide = _wide(out, reps)
    np.multiply(wide, row[None].repeat(reps, 0).ravel(), out=wide)
    return out


def relu(h: np.ndarray, zeros: np.ndarray | None = None) -> None:
    """h = max(h, 0) for C-contiguous (B, w) `h`, in place. `zeros`: optional read-only flat array of
    zeros of h's dtype, used when at least B w long (else a block of zeros is allocated)."""
    size = h.shape[0] * h.shape[1]
    if zeros is not None and zeros.size >= size and zeros.dtype == h.dtype:
        block = zeros[:size].reshape(h.shape)
    else:
        block = np.zeros(h.shape, h.dtype)
    np.maximum(h, block, out=h)


def row_records(a: np.ndarray) -> np.ndarray:
    """(n,) view of a C-contiguous (n, w) array with one opaque (void) element per row."""
    return a.view(f"V{a.shape[1] * a.itemsize}").reshape(a.shape[0])  # (the string form is the quickest)


def take_rows(a: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """a[rows] for a C-contiguous (n, w) array and (u,) rows: (u, w), same dtype, copied row by row; for
    (u, k) rows, the k rows of each side by side: (u, k w). (`ndarray.take` along axis 0 copies whole
    rows too, and is ~15% quicker than taking from the `row_records` view, which needs more calls.)"""
    taken = a.take(rows, axis=0)
    return taken if rows.ndim == 1 else taken.reshape(rows.shape[0], -1)


def take_block_rows(block: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """block[:, rows] for a C-contiguous (k, n, w) block and (u,) rows: a new C-contiguous (k, u, w)."""
    return block.take(rows, axis=1)


def put_block_rows(block: np.ndarray, rows: np.ndarray, values: np.ndarray) -> None:
    """block[:, rows] = values for a C-contiguous (k, n, w) block, (u,) unique rows and (k, u, w) values,
    scattering whole rows (one scatter per slot: ~10% quicker than one of flat indices into all k n)."""
    for slot, slot_values in zip(block, values, strict=True):
        row_records(slot).put(rows, row_records(slot_values))
