"""`NumpyNCF`: the from-scratch NumPy engine of GMF / MLP / NeuMF (no autodiff library).

Where things are:
- `model.ncf.numpy_network`: the network, its log loss and its hand-written backward pass, with the
  formulas;
- `model.ncf.numpy_optimizers`: the update rules (SGD with momentum, Adam, decoupled weight decay; dense
  and lazy row-wise updates);
- `model.ncf.numpy_sparse`: sums of per-example embedding gradients per table row;
- this module: the `NCFModel` hooks (build, parameters, training epoch, scoring) and the training step that
  ties the three together;
- `model.ncf.numpy_parallel`, `model.ncf.numpy_worker`: running a step's independent pieces in two
  processes (speed only, never a different result; `_runner` below); `model.ncf.numpy_kernels`: faster,
  bit-identical forms of a few array operations.

Parameters. The four embeddings live in one table: rows [0, n_users) are users, `[GMF part | MLP part]`,
rows [n_users, n_users + n_items) items, `[MLP part | GMF part]` (`_embedding_names`). Gathering a user row
and an item row side by side then gives `[user GMF | user MLP | item MLP | item GMF]`: one gather per
batch, and the two MLP parts adjacent, the MLP's input as one view (`model.ncf.numpy_network`); each side
of the table needs one row-gradient sum and one optimizer call for its two embeddings. The table and its
rows' optimizer state form one (1 + slots, rows, width) block, so that an update gathers and scatters
the touched rows of all of them at once (`Optimizer.update_rows`). The dense parameters are views into
one flat vector, updated in one optimizer call. All are float32 and read and written under the
engine-neutral names and shapes of `model.ncf.params` (`_views`), so weights copy to and from the Keras
engine and save/load share one layout.

Training step on a mini-batch of B (user, item, label) examples (`train_step`):
1. cut the batch into `parts` parts; for each (`_part`), gather its rows of the table, run the forward
   pass, the log loss and the backward pass, writing per-example row gradients ("slices") and the part's
   dense gradient into the step's arrays (`StepArrays`); add the parts' losses;
2. update the dense layers with the sum of the parts' dense gradients (`_update_dense`);
3. per side, users and items (`_update_side`): sort the side's rows once (`model.ncf.numpy_sparse`), sum
   the slices (and their squares, for Adam) per touched row and update only those rows and their
   optimizer state.
The parts of step 1 are independent, and so are step 2 and the two sides of step 3; `_runner` runs them
one after the other, or, inside `train_epoch`, spread over this process and forked helper processes,
which is why the arrays they share are allocated in shared memory (`shared_zeros`) and tasks are named
by method name with small arguments. Each task writes only its own outputs and the results are added in a
fixed order, so the number of processes never changes a result.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from model.ncf.base import NCFModel
from model.ncf.config import NCFConfig, TrainConfig
from model.ncf.numpy_kernels import take_rows
from model.ncf.numpy_network import (
    Rows,
    backward,
    dense_names,
    forward,
    gmf_width,
    log_loss_with_logits,
    softmax_loss_with_logits,
)
from model.ncf.numpy_optimizers import SGD, Adam, Optimizer
from model.ncf.numpy_parallel import StepRunner
from model.ncf.numpy_sparse import row_selector
from model.ncf.numpy_worker import shared_zeros
from model.ncf.params import Params, check_params, param_shapes, uses_gmf, uses_mlp
from model.ncf.scoring import score_pairs


def make_optimizer(train_config: TrainConfig) -> Optimizer:
    """The optimizer `train_config` asks for, with its decoupled weight decay and its state in shared
    memory."""
    options = {"weight_decay": train_config.weight_decay, "zeros": shared_zeros}
    if train_config.optimizer == "adam":
        return Adam(train_config.learning_rate, **options)
    return SGD(train_config.learning_rate, momentum=train_config.momentum, **options)


def _embedding_names(config: NCFConfig, side: str) -> list[str]:
    """The embeddings of a side in the order of their columns in the table: GMF then MLP for users, MLP
    then GMF for items (so that a gathered [user row | item row] holds [user MLP | item MLP] in one block)."""
    names = []
    if uses_gmf(config):
        names.append(f"gmf/{side}_embedding")
    if uses_mlp(config):
        names.append(f"mlp/{side}_embedding")
    return names if side == "user" else names[::-1]


@dataclass(frozen=True)
class StepArrays:
    """The arrays a training step on B examples works in: views into the engine's work buffers (shared
    memory, the same from step to step; `NumpyNCF._work_buffer`)."""

    users: np.ndarray  # (B,) intp: the batch's users
    items: np.ndarray  # (B,) intp: its items
    labels: np.ndarray  # (B,) engine dtype: its labels
    slices: np.ndarray  # (s, row width): per-example gradient slices of the gathered rows (`gradients`)
    squares: np.ndarray | None  # (s, row width): their squares (Adam), else None
    dense: list[np.ndarray]  # per part: its flat dense gradient, laid out as `NumpyNCF._dense_flat`
    dense_by_name: list[Params]  # the same, as views by parameter name
    zeros: np.ndarray  # (B * widest hidden layer,): zeros for the forward pass' ReLU (never written)


class NumpyNCF(NCFModel):
    """GMF / MLP / NeuMF trained by hand-written backpropagation in NumPy; see the module docstring."""

    engine = "numpy"
    dtype: type[np.floating] = np.float32  # of parameters, activations and optimizer state
    # Parts a batch is cut into for the forward and backward passes: 2, one per process (they must not
    # depend on the number of processes). In one process 1, 2 and 4 parts cost within ~10% of each other
    # (bench/results/numpy_engine_profile_ml1m.md), except where whole-batch temporaries are big enough for
    # glibc to hand them back to the system after each step (a scratch run: 850 page faults per step
    # with 1 part, none with 2). Changes results only by float rounding (the order in which the parts'
    # dense gradients are added).
    parts: int = 2
    # Processes that run a step's independent tasks inside `train_epoch`: the engine and `processes - 1`
    # forked helpers (2 = the cores of the machine this was tuned on; 1 = one after the other, in this
    # process). Does not change results at all.
    processes: int = 2
    # Steps per epoch timed with and without the helpers (each) before choosing (`StepRunner.step`).
    probe_steps: int = 8

    # --- NCFModel hooks -----------------------------------------------------------------------------
    def build(self, n_users: int, n_items: int, params: Params) -> None:
        """Copy `params` into the engine's arrays (see the module docstring) and start a fresh optimizer."""
        check_params(params, self.config, n_users, n_items)
        self.n_users, self.n_items = n_users, n_items
        self._optimizer = make_optimizer(self.train_config)
        sides = [
            np.concatenate([params[n] for n in _embedding_names(self.config, side)], axis=1)
            for side in ("user", "item")
        ]
        table = np.concatenate(sides, axis=0)
        # The table, then its rows' optimizer state (zeros: a fresh optimizer): (1 + slots, rows, width).
        self._rows = shared_zeros((1 + self._optimizer.slots, *table.shape), self.dtype)
        self._table = self._rows[0]
        self._table[...] = table
        names = dense_names(self.config)
        self._dense_flat = shared_zeros((sum(params[n].size for n in names),), self.dtype)
        self._dense_flat[...] = np.concatenate([np.ravel(params[n]) for n in names])
        self._dense_shapes = {n: params[n].shape for n in names}
        self._dense = self._dense_like(self._dense_flat)
        self._buffers: dict[str, np.ndarray] = {}  # `_work_buffer`
        self._step_views: dict[tuple[int, int], StepArrays] = {}  # `_step_arrays` by (batch, parts)
        self._dropout_rng = np.random.default_rng([self.train_config.seed, 1])
        self._runner = StepRunner(self)

    def _views(self) -> Params:
        """Parameters by engine-neutral name, in `param_shapes` order, as views into the engine's arrays."""
        f, width = gmf_width(self.config), self._table.shape[1]
        sides = {"user": self._table[: self.n_users], "item": self._table[self.n_users :]}
        views: Params = {}
        for name in param_shapes(self.config, self.n_users, self.n_items):
            part, _, kind = name.partition("/")
            if kind in ("user_embedding", "item_embedding"):
                side = kind.removesuffix("_embedding")
                gmf = slice(0, f) if side == "user" else slice(width - f, width)
                mlp = slice(f, width) if side == "user" else slice(0, width - f)
                views[name] = sides[side][:, gmf if part == "gmf" else mlp]
            else:
                views[name] = self._dense[name]
        return views

    def get_params(self) -> Params:
        return {name: np.ascontiguousarray(value).copy() for name, value in self._views().items()}

    def set_params(self, params: Params) -> None:
        check_params(params, self.config, self.n_users, self.n_items)
        for name, view in self._views().items():
            view[...] = params[name]

    def _inference_params(self) -> Params:
        return self._views()

    def score(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        """Probabilities of pairs: (n,) int, (n,) int -> (n,) float32."""
        return score_pairs(self._views(), self.config, np.asarray(user_idx), np.asarray(item_idx))

    def set_learning_rate(self, learning_rate: float) -> None:
        self._optimizer.learning_rate = learning_rate

    def train_epoch(
        self, user_idx: np.ndarray, item_idx: np.ndarray, labels: np.ndarray, batch_size: int
    ) -> float:
        """One pass in mini-batches of `batch_size`, in the given order; returns the mean training loss
        (`train_config.loss`, plus the L2 term when `l2` > 0), weighted by batch size.

        BLAS runs single-threaded here: the matrices are small (batch x 64), so BLAS threads only add
        overhead, and on a shared, loaded machine OpenBLAS threads slowed training several-fold in our runs.
        The cores are used instead by the step's helper processes (`StepRunner.helpers`), forked at the
        start of the epoch (after the step's arrays are allocated, so that they share them) and stopped at
        its end.
        """
        self.train_config.check_groups(user_idx.shape[0], batch_size)
        labels = np.asarray(labels, dtype=self.dtype)
        n, total = labels.shape[0], 0.0
        self._step_arrays(min(batch_size, n))
        with (
            threadpool_limits(limits=1, user_api="blas"),
            self._runner.helpers(self.processes, self.probe_steps),
        ):
            for start in range(0, n, batch_size):
                batch = (user_idx[start : start + batch_size], item_idx[start : start + batch_size])
                loss = self._runner.step(self.train_step, *batch, labels[start : start + batch_size])
                total += loss * batch[0].shape[0]
        return total / max(n, 1)

    # --- the training step --------------------------------------------------------------------------
    def train_step(self, user_idx: np.ndarray, item_idx: np.ndarray, labels: np.ndarray) -> float:
        """One optimizer step on one mini-batch: (B,) int, (B,) int, (B,) float; returns its loss.

        The dense layers' update is tiny and runs first, here, while a helper (when there is one) starts
        on the user side, which costs ~13% more than the item side (same number of touched rows, spread
        over a larger table: 692 vs 613 us CPU per step in a scratch run at load 2.7).
        """
        self._optimizer.step()
        loss = self._backprop(user_idx, item_idx, labels)  # 1. forward and backward passes
        batch = labels.shape[0]
        sides = [("_update_side", (side, batch)) for side in ("item", "user")]  # 3. the embedding rows
        self._runner.run(sides, first=("_update_dense", (batch,)))  # 2. the dense layers
        return loss

    def _backprop(self, user_idx: np.ndarray, item_idx: np.ndarray, labels: np.ndarray) -> float:
        """Loss of a mini-batch: (B,) int, (B,) int, (B,) float; leaves its gradient slices and the parts'
        dense gradients in the step's arrays (`_step_arrays`; `_dense_gradient` adds the parts').

        loss = mean log loss + l2 * (sum over the B examples of their squared embedding rows / B + squared
        norm of every kernel), the same penalty as the Keras engine.
        """
        config, batch = self.config, labels.shape[0]
        arrays = self._step_arrays(batch)
        arrays.users[...], arrays.items[...], arrays.labels[...] = user_idx, item_idx, labels
        group = self.train_config.group_size()  # parts hold whole groups of the softmax loss
        parts = min(self.parts, batch // group)
        bounds = [group * (batch // group * k // parts) for k in range(parts + 1)]
        tasks = [("_part", (k, start, stop, batch)) for k, (start, stop) in enumerate(pairwise(bounds))]
        # Dropout draws its masks from one generator: the parts then run one after the other, in order, here.
        losses = [self._part(*args) for _, args in tasks] if config.dropout > 0 else self._runner.run(tasks)
        loss = sum(losses)
        if config.l2:
            loss += config.l2 * sum(
                float(np.sum(np.square(param)))
                for name, param in self._dense.items()
                if name.endswith("kernel")
            )
        return loss

    def _part(self, index: int, start: int, stop: int, batch: int) -> float:
        """Forward and backward pass of examples [start, stop) of the step's batch of `batch`: writes their
        gradient slices and the part's dense gradient into the step's arrays and returns their share of
        the loss."""
        config, arrays = self.config, self._step_arrays(batch)
        width, f = self._table.shape[1], gmf_width(config)
        mlp = width - f  # MLP columns of a side
        pairs = np.empty((stop - start, 2), dtype=np.intp)  # (user row, item row) of each example
        pairs[:, 0] = arrays.users[start:stop]
        np.add(arrays.items[start:stop], self.n_users, out=pairs[:, 1])
        gathered = take_rows(self._table, pairs)  # (b, 2 width): [user GMF | user MLP | item MLP | item GMF]
        user_rows, item_rows = gathered[:, :width], gathered[:, width:]
        inputs = Rows(
            user_rows[:, :f],
            item_rows[:, mlp:],
            user_rows[:, f:],
            item_rows[:, :mlp],
            gathered[:, f : f + 2 * mlp],
        )
        at = (2 if config.l2 else 1) * batch  # first slice of the item side
        user_grads, item_grads = arrays.slices[start:stop], arrays.slices[at + start : at + stop]
        grads = Rows(user_grads[:, :f], item_grads[:, mlp:], user_grads[:, f:], item_grads[:, :mlp])
        rng = self._dropout_rng if config.dropout > 0 else None
        logits, cache = forward(config, self._dense, inputs, rng, arrays.zeros)
        if self.train_config.loss == "softmax":
            group = self.train_config.group_size()
            loss, dlogits = softmax_loss_with_logits(logits, group, batch // group)
        else:
            loss, dlogits = log_loss_with_logits(logits, arrays.labels[start:stop], batch)
        backward(config, self._dense, cache, dlogits, grads, arrays.dense_by_name[index])
        if config.l2:  # l2 * |row|^2 / B per gathered row: its penalty slice is 2 l2 row / B
            loss += config.l2 * float(np.sum(np.square(gathered))) / batch
            scale = self.dtype(2 * config.l2 / batch)
            np.multiply(user_rows, scale, out=arrays.slices[batch + start : batch + stop])
            np.multiply(item_rows, scale, out=arrays.slices[at + batch + start : at + batch + stop])
        return loss

    def _dense_gradient(self, batch: int) -> np.ndarray:
        """The flat dense gradient (as `_dense_flat`) of the last `_backprop` on `batch` examples: the
        parts' gradients added in a fixed order (into the first part's array), plus the L2 term."""
        dense_parts = self._step_arrays(batch).dense
        dense_grad = dense_parts[0]
        for part_grad in dense_parts[1:]:
            dense_grad += part_grad
        if self.config.l2:
            offset = 0
            for name, param in self._dense.items():
                if name.endswith("kernel"):
                    dense_grad[offset : offset + param.size] += self.dtype(2 * self.config.l2) * param.ravel()
                offset += param.size
        return dense_grad

    def _update_dense(self, batch: int) -> None:
        """Decoupled weight decay, then the optimizer's update, of the dense layers."""
        grad = self._dense_gradient(batch)
        self._optimizer.decay(self._dense_flat)
        self._optimizer.update("dense", self._dense_flat, grad)

    def _update_side(self, side: str, batch: int) -> None:
        """Update one side ("user" or "item") of the table after `_backprop` on `batch` examples: decoupled
        weight decay on every row of the side, then the lazy update of the rows the batch touched, with the
        sums of their gradient slices (and of the slices' squares, for Adam)."""
        arrays, optimizer = self._step_arrays(batch), self._optimizer
        users = side == "user"
        optimizer.decay(self._table[: self.n_users] if users else self._table[self.n_users :])
        sets = 2 if self.config.l2 else 1  # with L2, each side has its penalty slices after its gradients
        keys = arrays.users if users else arrays.items
        keys = np.tile(keys, sets) if sets > 1 else keys
        count = keys.shape[0]  # slices of a side
        first = 0 if users else count
        rows, selector = row_selector(keys)
        if not users:
            rows += self.n_users
        slices = arrays.slices[first : first + count]
        squared = None
        if arrays.squares is not None:  # squared here, not in `_part`: the row sums then read them from cache
            squared = np.square(slices, out=arrays.squares[first : first + count])
        optimizer.update_rows(self._rows, rows, selector, slices, squared)

    def gradients(
        self, user_idx: np.ndarray, item_idx: np.ndarray, labels: np.ndarray
    ) -> tuple[float, np.ndarray, np.ndarray, Params]:
        """Loss of a mini-batch and its gradients, by the hand-written backward pass (what `train_step`
        computes before its updates; the loss as `_backprop`).

        Returns:
            (loss, indices (s,) embedding-table rows, gradient slices (s, row width), gradients of the
            dense parameters by name). The slices are per example, users first (at row user, [GMF | MLP]),
            then items (at row n_users + item, [MLP | GMF]); with L2 each side's penalty slices follow its
            gradient slices (s = 4B, else 2B), like the `tf.IndexedSlices` Keras builds. A row's gradient
            is the sum of its slices (`sum_rows`); Adam's second moment sums their squares.
        """
        loss = self._backprop(user_idx, item_idx, labels)
        batch = labels.shape[0]
        slices, dense_grad = self._step_arrays(batch).slices.copy(), self._dense_gradient(batch)
        sets = 2 if self.config.l2 else 1
        indices = np.concatenate([np.tile(user_idx, sets), np.tile(item_idx + self.n_users, sets)])
        return (
            loss,
            indices,
            slices,
            {name: grad.copy() for name, grad in self._dense_like(dense_grad).items()},
        )

    # --- memory ------------------------------------------------------------------------------------
    def _step_arrays(self, batch: int) -> StepArrays:
        """The arrays of a step on `batch` examples (views, cached)."""
        cached = self._step_views.get((batch, self.parts))
        if cached is not None:
            return cached
        slices = (2 * (2 if self.config.l2 else 1) * batch, self._table.shape[1])
        dense = [
            self._work_buffer(f"dense/{k}", self._dense_flat.shape) for k in range(min(self.parts, batch))
        ]
        arrays = self._step_views[batch, self.parts] = StepArrays(
            users=self._work_buffer("users", (batch,), np.intp),
            items=self._work_buffer("items", (batch,), np.intp),
            labels=self._work_buffer("labels", (batch,)),
            slices=self._work_buffer("slices", slices),
            squares=self._work_buffer("squares", slices) if self._optimizer.needs_squared_row_grads else None,
            dense=dense,
            dense_by_name=[self._dense_like(flat) for flat in dense],
            zeros=self._work_buffer("zeros", (batch * max(self.config.layers[1:], default=0),)),
        )
        return arrays

    def _dense_like(self, flat: np.ndarray) -> Params:
        """Views of a flat vector laid out as `_dense_flat`, by parameter name."""
        views, offset = {}, 0
        for name, shape in self._dense_shapes.items():
            size = int(np.prod(shape))
            views[name] = flat[offset : offset + size].reshape(shape)
            offset += size
        return views

    def _work_buffer(self, name: str, shape: tuple[int, ...], dtype: Any = None) -> np.ndarray:
        """An uninitialised (well, stale; zeros until written) array of `shape` and `dtype` (default the
        engine's) in shared memory, the same one from step to step: fresh megabyte-sized arrays every step
        cost page faults whenever the allocator has handed their memory back to the system in between, and
        helper processes only see memory that existed when they were forked. Grows (only while there are
        no helpers) when a larger shape comes."""
        dtype = np.dtype(self.dtype if dtype is None else dtype)
        size = int(np.prod(shape))
        buffer = self._buffers.get(name)
        if buffer is None or buffer.size < size:
            if self._runner.forked:
                raise RuntimeError(f"work buffer {name} outgrown while helper processes share it")
            buffer = self._buffers[name] = shared_zeros((size,), dtype)
            self._step_views.clear()
        return buffer[:size].reshape(shape)
