"""SGD (with momentum) and Adam written out in NumPy, with decoupled weight decay and dense and
row-wise (lazy) updates.

Formulas follow Keras 3 so that one step matches Keras' own step:
- decoupled weight decay (AdamW / SGDW; `decay`): p *= 1 - lr * weight_decay, on every parameter, before
  its update (the engine decays whole embedding tables, touched rows or not);
- SGD:  v = momentum * v - lr * g;  p += v   (plain p -= lr * g when momentum is 0)
- Adam: m += (g - m)(1 - b1);  v += (s - v)(1 - b2);  p -= lr_t m / (sqrt(v) + eps),
        lr_t = lr sqrt(1 - b2^t) / (1 - b1^t), t = number of steps taken, s = g^2 for dense parameters.
  The state holds the moments scaled, m / (1 - b1) and v / (1 - b2) (`Adam._decrement`): two passes per
  moment instead of three, same step up to float32 rounding. The state is internal (never saved).

Embedding rows (`update_rows`):
- s is the sum over the batch of each example's squared row gradient, not the square of the summed
  gradient. That is what Keras 3 on TensorFlow does: an embedding's gradient is a `tf.IndexedSlices` with
  one slice per example, `keras.ops.square` squares the slices before duplicates are summed (see
  `keras/src/backend/tensorflow/sparse.py`, `elementwise_unary`), so a row seen k times in a batch gets
  sum_j g_j^2 in its second moment. Following it keeps the two engines on the same algorithm (with the
  textbook (sum_j g_j)^2 the MLP stalled on a plateau in the contract's block test where Keras did not).
- only the given rows of the table and of its optimizer state change (lazy updates): a row outside the
  batch keeps its parameters and moments. Keras applies its dense formulas to every row, so a row with
  non-zero momentum keeps moving while absent; the two agree whenever the moments of absent rows are zero
  (e.g. on the first step) and when every row is in every batch.
- the caller keeps a table's rows and their optimizer state in one (1 + slots, n, w) block: the table,
  then each slot of state (for Adam M and V) for every row. The touched rows of all of them move in one
  gather (1 + slots, u, w) and one scatter (`model.ncf.numpy_kernels.take_block_rows`,
  `put_block_rows`), and the update rules run on the gathered rows as on a dense parameter: on
  contiguous blocks (a ufunc on a strided (u, w) view calls its inner loop once per row, which for w = 40
  costs as much as the arithmetic).
- the rows' gradients arrive as per-example slices with a `RowSelector` (`model.ncf.numpy_sparse`), and
  Adam adds their sums straight into its gathered moments (M = b1 M, then M += sum of the slices, in
  scipy's accumulating kernel): no separate sum arrays, no extra pass.
All updates are in place and keep the parameter's dtype.

All state (moments, velocities, the step count and the step size) lives in arrays allocated by the
`zeros` the optimizer is given: the NumPy engine gives shared memory, so that the processes it forks to
update some of the rows (`model.ncf.numpy_parallel`) read and write the same state.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import numpy as np

from model.ncf.numpy_kernels import put_block_rows, take_block_rows
from model.ncf.numpy_sparse import RowSelector

Zeros = Callable[[tuple[int, ...], Any], np.ndarray]  # zeros(shape, dtype), as np.zeros


class Optimizer(ABC):
    """In-place optimizer over named parameters; state is created on the first update of each name.

    Args:
        learning_rate: step size (`learning_rate` may change between steps).
        weight_decay: decoupled weight decay per unit of step size (0: none; see `decay`).
        zeros: allocates the state (see the module docstring).
    """

    needs_squared_row_grads = False  # whether `update_rows` wants the per-example squared gradients

    def __init__(self, learning_rate: float, weight_decay: float = 0.0, zeros: Zeros = np.zeros) -> None:
        self.weight_decay = weight_decay
        self.zeros = zeros
        self._state: dict[str, list[np.ndarray]] = {}
        self._scalars = zeros((2,), np.float64)  # [step size, steps taken]
        self.learning_rate = learning_rate

    @property
    def learning_rate(self) -> float:
        return float(self._scalars[0])

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        self._scalars[0] = value

    @property
    def iterations(self) -> int:
        """Steps taken (`step` calls): t in Adam's bias correction."""
        return int(self._scalars[1])

    @property
    def slots(self) -> int:
        """Arrays of state per parameter (each of the parameter's shape)."""
        return 0

    def step(self) -> None:
        """Start a new training step (call once per batch, before its updates)."""
        self._scalars[1] += 1

    def decay(self, param: np.ndarray) -> None:
        """Decoupled weight decay of `param` (any shape) for this step, in place, before its update:
        param *= 1 - learning_rate * weight_decay (nothing when weight_decay is 0)."""
        if self.weight_decay:
            param *= param.dtype.type(1.0 - self.learning_rate * self.weight_decay)

    def _slots(self, name: str, param: np.ndarray) -> list[np.ndarray]:
        if name not in self._state:
            self._state[name] = [self.zeros(param.shape, param.dtype) for _ in range(self.slots)]
        return self._state[name]

    @abstractmethod
    def update(self, name: str, param: np.ndarray, grad: np.ndarray) -> None:
        """Dense update of the whole of `param` (any shape) with `grad` (same shape; may be overwritten)."""

    def update_rows(
        self,
        block: np.ndarray,
        rows: np.ndarray,
        selector: RowSelector,
        slices: np.ndarray,
        squared_slices: np.ndarray | None = None,
    ) -> None:
        """Lazy update of the rows `rows` of a table and of their optimizer state.

        Args:
            block: C-contiguous (1 + slots, n, width): the table's n rows, then each slot of their state
                (zeros before the first update).
            rows: (u,) unique int rows of the table, sorted.
            selector: (u, s) 0/1 matrix (`model.ncf.numpy_sparse.row_selector`) whose row r picks the
                slices of rows[r].
            slices: (s, width) per-example gradient slices; a row's gradient is the sum of its slices.
            squared_slices: (s, width) their squares (used by Adam, when `needs_squared_row_grads`; else
                computed here).
        """
        taken = take_block_rows(block, rows)
        self._update_taken_rows(taken, selector, slices, squared_slices)
        put_block_rows(block, rows, taken)

    @abstractmethod
    def _update_taken_rows(
        self,
        taken: np.ndarray,
        selector: RowSelector,
        slices: np.ndarray,
        squared_slices: np.ndarray | None,
    ) -> None:
        """`update_rows` on the gathered (1 + slots, u, width) rows, in place."""


class SGD(Optimizer):
    """Stochastic gradient descent with optional (heavy-ball) momentum."""

    def __init__(
        self,
        learning_rate: float,
        momentum: float = 0.0,
        *,
        weight_decay: float = 0.0,
        zeros: Zeros = np.zeros,
    ) -> None:
        super().__init__(learning_rate, weight_decay, zeros)
        self.momentum = momentum

    @property
    def slots(self) -> int:
        return 1 if self.momentum else 0

    def update(self, name: str, param: np.ndarray, grad: np.ndarray) -> None:
        self._step(param, self._slots(name, param)[0] if self.momentum else None, grad)

    def _update_taken_rows(
        self,
        taken: np.ndarray,
        selector: RowSelector,
        slices: np.ndarray,
        squared_slices: np.ndarray | None,
    ) -> None:
        self._step(taken[0], taken[1] if self.momentum else None, selector @ slices)

    def _step(self, param: np.ndarray, velocity: np.ndarray | None, grad: np.ndarray) -> None:
        """In place: `param` -= lr * grad, or with momentum through `velocity` (same shape as `param`)."""
        if velocity is None:
            param -= self.learning_rate * grad
            return
        velocity *= self.momentum
        velocity -= self.learning_rate * grad
        param += velocity


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015) with Keras' defaults and epsilon placement."""

    needs_squared_row_grads = True

    def __init__(
        self,
        learning_rate: float,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        *,
        weight_decay: float = 0.0,
        zeros: Zeros = np.zeros,
    ) -> None:
        super().__init__(learning_rate, weight_decay, zeros)
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon

    @property
    def slots(self) -> int:
        return 2

    def _decrement(self, m: np.ndarray, v: np.ndarray, out: np.ndarray) -> np.ndarray:
        """The parameter decrement from the scaled moments after their update, written into `out` (m's
        shape and dtype; returned). In place: no temporary is allocated.

        The state holds M = m / (1 - b1) and V = v / (1 - b2) (Keras' moments, scaled), so that each
        moment update is two passes (M = b1 M + g; V = b2 V + s) instead of three; the constants move into
        the step: lr_t m / (sqrt(v) + eps) = c M / (sqrt(V) + eps'), c = lr_t (1 - b1) / sqrt(1 - b2),
        eps' = eps / sqrt(1 - b2). Equal to Keras' step up to float32 rounding."""
        t, root = self.iterations, np.sqrt(1 - self.beta_2)
        lr_t = self.learning_rate * np.sqrt(1 - self.beta_2**t) / (1 - self.beta_1**t)
        dtype = m.dtype.type
        np.sqrt(v, out=out)
        out += dtype(self.epsilon / root)
        np.divide(m, out, out=out)
        out *= dtype(lr_t * (1 - self.beta_1) / root)
        return out

    def update(self, name: str, param: np.ndarray, grad: np.ndarray) -> None:
        m, v = self._slots(name, param)
        dtype = m.dtype.type
        m *= dtype(self.beta_1)
        m += grad
        v *= dtype(self.beta_2)
        v += np.square(grad, out=grad)  # `grad` may be overwritten: it holds the square, then the step
        param -= self._decrement(m, v, out=grad)

    def _update_taken_rows(
        self,
        taken: np.ndarray,
        selector: RowSelector,
        slices: np.ndarray,
        squared_slices: np.ndarray | None,
    ) -> None:
        """The dense update on the gathered rows, with the row sums of the slices and of their squares
        added straight into the scaled moments (M = b1 M + sum g, V = b2 V + sum g^2)."""
        params, m, v = taken
        dtype = m.dtype.type
        m *= dtype(self.beta_1)
        selector.add_product(slices, m)
        v *= dtype(self.beta_2)
        selector.add_product(np.square(slices) if squared_slices is None else squared_slices, v)
        params -= self._decrement(m, v, out=np.empty_like(m))
