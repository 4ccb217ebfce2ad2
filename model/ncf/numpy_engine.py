"""`NumpyNCF`: the from-scratch NumPy engine of GMF / MLP / NeuMF (no autodiff library).

Training step on a mini-batch of B (user, item, label) examples:
1. cut the batch into `parts` parts; for each, gather the user and item rows of the embedding table
   (one table: users then items, user rows `[GMF part | MLP part]`, item rows `[MLP part | GMF part]`,
   so the whole part needs one gather of (user, n_users + item) pairs, and the two MLP parts of an
   example are side by side in it, the first MLP layer's input as one view), run the forward pass, the
   stable log loss on logits and the hand-written backward pass (`model.ncf.numpy_network`), writing
   per-example row gradients into shared work buffers; the parts' dense gradients are then added;
2. update the dense layers (`model.ncf.numpy_optimizers`);
3. per side (users, items): sort the side's rows once (`model.ncf.numpy_sparse`), sum the per-example
   row gradients (and their squares, for Adam) per touched row and update only those rows and their
   optimizer state.
Inside `train_epoch`, the parts of step 1 and the two sides of step 3 run in `processes` processes:
the engine itself and `processes - 1` helper processes forked from it (`model.ncf.numpy_worker.StepHelper`),
which share the engine's parameters, optimizer state and work buffers (all in anonymous shared memory).
Processes, unlike threads, do not contend for the GIL: a step makes a few hundred NumPy calls of a few
microseconds each, and with threads their Python overhead serialised much of the step. Each task writes
only its own outputs and the engine adds the parts' results in a fixed order, so the result does not
depend on the number of processes or their timing. Each epoch first times steps with and without the
helpers and keeps the faster (`train_epoch`).

Parameters are float32 and use the engine-neutral names and shapes of `model.ncf.params`, so weights copy
to and from the Keras engine and save/load share one layout.
"""

from __future__ import annotations

import logging
import time
from itertools import pairwise
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from model.ncf.base import NCFModel
from model.ncf.config import NCFConfig, TrainConfig
from model.ncf.numpy_network import Rows, backward, dense_names, forward, gmf_width, log_loss_with_logits
from model.ncf.numpy_optimizers import SGD, Adam, Optimizer, take_rows
from model.ncf.numpy_sparse import row_selector
from model.ncf.numpy_worker import StepHelper, can_fork, shared_zeros
from model.ncf.params import Params, check_params, param_shapes, uses_gmf, uses_mlp
from model.ncf.scoring import score_pairs

logger = logging.getLogger(__name__)
Task = tuple[str, tuple]  # (name of a NumpyNCF method, its arguments)


def make_optimizer(train_config: TrainConfig) -> Optimizer:
    """The optimizer `train_config` asks for, with its state in shared memory."""
    if train_config.optimizer == "adam":
        optimizer: Optimizer = Adam(train_config.learning_rate)
    else:
        optimizer = SGD(train_config.learning_rate, momentum=train_config.momentum)
    optimizer.zeros = shared_zeros
    return optimizer


def _shared_copy(array: np.ndarray, dtype: Any) -> np.ndarray:
    copy = shared_zeros(array.shape, dtype)
    copy[...] = array
    return copy


def _embedding_names(config: NCFConfig, side: str) -> list[str]:
    """The embeddings of a side in the order of their columns in the table: GMF then MLP for users, MLP
    then GMF for items (so that a gathered [user row | item row] holds [user MLP | item MLP] in one block)."""
    names = []
    if uses_gmf(config):
        names.append(f"gmf/{side}_embedding")
    if uses_mlp(config):
        names.append(f"mlp/{side}_embedding")
    return names if side == "user" else names[::-1]


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
    # Processes that run the parts and the two sides' row updates inside `train_epoch`: the engine and
    # `processes - 1` forked helpers (2 = the cores of the machine this was tuned on; 1 = one after the
    # other, in this process). Does not change results at all.
    processes: int = 2
    # Steps per epoch timed with and without the helpers (each) before choosing (see `train_epoch`).
    probe_steps: int = 8
    _pool: list[StepHelper] | None = None  # the helpers the current step uses (None: none)
    _helpers: tuple[StepHelper, ...] = ()  # all helpers forked for the current epoch
    _epoch: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # train_epoch's arrays, while it runs
    _batch_start: int | None = None  # where the current step's batch starts in them
    _batch: tuple[np.ndarray, np.ndarray, np.ndarray]  # the current step's batch (`_batch_arrays`)

    def build(self, n_users: int, n_items: int, params: Params) -> None:
        """Copy `params` into the engine's arrays and start a fresh optimizer (float32)."""
        check_params(params, self.config, n_users, n_items)
        self.n_users, self.n_items = n_users, n_items
        # One embedding table: rows [0, n_users) are users, [GMF part | MLP part], rows [n_users, n_users +
        # n_items) items, [MLP part | GMF part] (`_embedding_names`). A batch part then needs one gather,
        # a side one row-gradient sum and one optimizer call for all four embedding parameters. In shared
        # memory, like the dense parameters, the optimizer state and the step's work buffers.
        sides = [
            np.concatenate([params[n] for n in _embedding_names(self.config, side)], axis=1)
            for side in ("user", "item")
        ]
        table = np.concatenate(sides, axis=0)
        self._optimizer = make_optimizer(self.train_config)
        # The table and its rows' optimizer state (zeros: a fresh optimizer) in one (1 + slots, rows,
        # width) block, so that a side's update gathers and scatters the touched rows of all of them at
        # once (`Optimizer.update_rows`).
        self._rows = shared_zeros((1 + self._optimizer.slots, *table.shape), self.dtype)
        self._table = self._rows[0]
        self._table[...] = table
        # Dense parameters are views into one flat vector, so the optimizer updates them in one go.
        names = dense_names(self.config)
        self._dense_flat = _shared_copy(np.concatenate([np.ravel(params[n]) for n in names]), self.dtype)
        self._dense, offset = {}, 0
        for name in names:
            size = params[name].size
            self._dense[name] = self._dense_flat[offset : offset + size].reshape(params[name].shape)
            offset += size
        self._buffers: dict[str, np.ndarray] = {}  # `_work_buffer`
        self._step_views: dict[tuple[int, int], tuple] = {}  # `_step_buffers` by (batch, parts)
        self._dropout_rng = np.random.default_rng([self.train_config.seed, 1])

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
        (log loss, plus the L2 term when `l2` > 0), weighted by batch size.

        BLAS runs single-threaded here: the matrices are small (batch x 64), so BLAS threads only add
        overhead, and on a shared, loaded machine OpenBLAS threads slowed training several-fold in our runs.
        The cores are used instead by running each step's parts in `processes` processes (see `train_step`),
        when that is faster: the first 2 `probe_steps` steps alternate between this process alone and
        with the helpers, and the rest of the epoch uses whichever had the lower median wall time (on a
        loaded machine the second core may be busy, and the helpers then only add overhead). The helpers
        never change the results, so this choice does not either. They are forked at the start of the
        epoch and stopped at its end.
        """
        labels = np.asarray(labels, dtype=self.dtype)
        total = 0.0
        helpers: list[StepHelper] = []
        # Wall seconds of the probe steps: index 0 without the helpers, 1 with them.
        probes: tuple[list[float], list[float]] = ([], [])
        with threadpool_limits(limits=1, user_api="blas"):
            try:
                self._epoch = (user_idx, item_idx, labels)  # helpers forked below read their batches here
                if self.processes > 1 and can_fork():
                    self._reserve(batch_size)  # everything the helpers touch, allocated before the fork
                    helpers = self._start_helpers()
                self._helpers = tuple(helpers)
                pool = helpers or None
                self._pool = pool
                for step, start in enumerate(range(0, labels.shape[0], batch_size)):
                    probing = pool is not None and step < 2 * self.probe_steps
                    if probing:  # alternate, so that both see the same load
                        self._pool = pool if step % 2 else None
                    elif pool is not None and self.probe_steps and step == 2 * self.probe_steps:
                        single, helped = (float(np.median(times)) * 1e3 for times in probes)
                        self._pool = pool if helped < single else None
                        logger.info(
                            "step processes: %d (median step %.2f ms alone, %.2f ms with %d)",
                            self.processes if self._pool else 1,
                            single,
                            helped,
                            self.processes,
                        )
                    stop = start + batch_size
                    began = time.perf_counter()
                    self._batch_start = start
                    loss = self.train_step(user_idx[start:stop], item_idx[start:stop], labels[start:stop])
                    if probing:
                        probes[step % 2].append(time.perf_counter() - began)
                    total += loss * (min(stop, labels.shape[0]) - start)
            finally:
                self._pool, self._helpers, self._epoch, self._batch_start = None, (), None, None
                for helper in helpers:
                    helper.close()
        return total / max(labels.shape[0], 1)

    def _start_helpers(self) -> list[StepHelper]:
        """`processes - 1` helper processes, or none (logged) where processes cannot be started here (e.g.
        inside a daemonic multiprocessing worker)."""
        helpers: list[StepHelper] = []
        try:
            for _ in range(self.processes - 1):
                helpers.append(StepHelper(self))
        except (AssertionError, OSError) as error:  # multiprocessing asserts on daemonic parents
            logger.warning("no step helper processes (%s): training in one process", error)
            for helper in helpers:
                helper.close()
            return []
        return helpers

    def _run(self, tasks: list[Task], first: Task | None = None) -> list[Any]:
        """Results of `tasks` (method name, arguments) in order: the first runs here, the next ones are
        offered to the step's helpers, one each, when there are (inside `train_epoch`), and the rest runs
        here, one after the other; a task that its helper has not started by then runs here too (see
        `StepHelper`). `first`, when given, runs here before them, while the helpers already work. Each
        task writes only its own outputs, so the results do not depend on where or when the tasks ran."""
        offered = dict(zip(range(1, len(tasks)), self._pool or (), strict=False))  # task -> helper
        for k, helper in offered.items():
            helper.submit(*tasks[k])
        if first:
            getattr(self, first[0])(*first[1])
        results = [
            None if k in offered else getattr(self, name)(*args) for k, (name, args) in enumerate(tasks)
        ]
        for k, helper in offered.items():  # a task its helper has not started yet runs here
            results[k] = getattr(self, tasks[k][0])(*tasks[k][1]) if helper.take_back() else helper.result()
        return results

    def train_step(self, user_idx: np.ndarray, item_idx: np.ndarray, labels: np.ndarray) -> float:
        """One optimizer step on one mini-batch: (B,) int, (B,) int, (B,) float; returns its loss.

        Two parallel phases: the forward and backward passes of `parts` parts of the batch
        (`_backprop`), then the row sums and lazy updates of the user rows and of the item rows (disjoint
        rows, separate optimizer state), each side first shrinking its whole half of the table by the
        decoupled weight decay (when set). The dense layers' update (decay, then the optimizer) is tiny
        and runs here, before the item side, while a helper does the user side: the user side costs ~13%
        more (same number of touched rows, spread over a larger table: 692 vs 613 us CPU per step in a
        scratch run at load 2.7).
        """
        optimizer = self._optimizer
        optimizer.step()
        batch, args = labels.shape[0], (optimizer.iterations, optimizer.learning_rate)
        sides = [("_update_side", (side, batch, self._batch_start, *args)) for side in ("item", "user")]
        loss, _, _ = self._backprop(user_idx, item_idx, labels)
        self._run(sides, first=("_update_dense", (batch,)))  # the helper starts before the dense sum
        return loss

    def _update_dense(self, batch: int) -> None:
        grad = self._dense_gradient(batch)
        if self.train_config.weight_decay:  # decoupled, before the update, as in Keras 3
            self._dense_flat *= self.dtype(
                1.0 - self._optimizer.learning_rate * self.train_config.weight_decay
            )
        self._optimizer.update("dense", self._dense_flat, grad)

    def _batch_arrays(self, batch_start: int | None, batch: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(user_idx, item_idx, labels) of the current step: inside `train_epoch`, `batch` examples from
        `batch_start` of the epoch's arrays (which the helpers inherited when forked, so that requests to
        them carry offsets, not arrays); else the batch given to `train_step`."""
        if batch_start is None:
            return self._batch
        stop = batch_start + batch
        return tuple(array[batch_start:stop] for array in self._epoch)  # type: ignore[return-value]

    def _update_side(
        self, side: str, batch: int, batch_start: int | None, iterations: int, learning_rate: float
    ) -> None:
        """Shrink one side's half of the table by the decoupled weight decay (when set), sum the side's
        gradient slices of this step (and their squares) per touched row and update those rows.
        `iterations` and `learning_rate` are the optimizer's (a helper process has its own copy of the
        optimizer object)."""
        self._optimizer.iterations, self._optimizer.learning_rate = iterations, learning_rate
        table = self._table[: self.n_users] if side == "user" else self._table[self.n_users :]
        if self.train_config.weight_decay:  # decoupled, on every row of the side, before its update
            table *= self.dtype(1.0 - learning_rate * self.train_config.weight_decay)
        slices, squares, _, _, _ = self._step_buffers(batch)
        sets = 2 if self.config.l2 else 1  # with L2, each side has its penalty slices after its gradients
        keys = self._batch_arrays(batch_start, batch)[0 if side == "user" else 1]
        keys = np.tile(keys, sets) if sets > 1 else keys
        at = keys.shape[0]  # slices of a side
        first = 0 if side == "user" else at
        rows, selector = row_selector(keys)
        if side == "item":
            rows += self.n_users
        side_slices = slices[first : first + at]
        squared = None
        if squares is not None:  # squared here, not in `_part`: the row sums then read them from cache
            squared = np.square(side_slices, out=squares[first : first + at])
        self._optimizer.update_rows(self._rows, rows, selector, side_slices, squared)

    def gradients(
        self, user_idx: np.ndarray, item_idx: np.ndarray, labels: np.ndarray
    ) -> tuple[float, np.ndarray, np.ndarray, Params]:
        """Loss of a mini-batch and its gradients, by the hand-written backward pass (what `train_step`
        computes before its updates).

        loss = mean log loss + l2 * (sum over the B examples of their squared embedding rows / B + squared
        norm of every kernel), the same penalty as the Keras engine.

        Returns:
            (loss, indices (s,) embedding-table rows, gradient slices (s, row width), gradients of the
            dense parameters by name). The slices are per example, users first (at row user, [GMF | MLP]),
            then items (at row n_users + item, [MLP | GMF]); with L2 each side's penalty slices follow its
            gradient slices (s = 4B, else 2B), like the `tf.IndexedSlices` Keras builds. A row's gradient
            is the sum of its slices (`sum_rows`); Adam's second moment sums their squares.
        """
        loss, slices, _ = self._backprop(user_idx, item_idx, labels)
        slices, dense_grad = slices.copy(), self._dense_gradient(labels.shape[0])  # work buffers
        sets = 2 if self.config.l2 else 1
        indices = np.concatenate([np.tile(user_idx, sets), np.tile(item_idx + self.n_users, sets)])
        return (
            loss,
            indices,
            slices,
            {name: grad.copy() for name, grad in self._dense_like(dense_grad).items()},
        )

    def _step_buffers(
        self, batch: int
    ) -> tuple[np.ndarray, np.ndarray | None, list[np.ndarray], list[Params], np.ndarray]:
        """The work buffers of a step on `batch` examples: embedding gradient slices and their squares
        (`gradients` describes the slices), each part's flat dense gradient, also as views by parameter
        name, and a flat array of zeros for the forward pass' ReLU (never written; all views, cached)."""
        cached = self._step_views.get((batch, self.parts))
        if cached is not None:
            return cached
        shape = (2 * (2 if self.config.l2 else 1) * batch, self._table.shape[1])
        slices = self._work_buffer("slices", shape)
        squares = self._work_buffer("squares", shape) if self._optimizer.needs_squared_row_grads else None
        dense = [
            self._work_buffer(f"dense/{k}", self._dense_flat.shape) for k in range(min(self.parts, batch))
        ]
        by_name = [self._dense_like(flat) for flat in dense]
        zeros = self._work_buffer("zeros", (batch * max(self.config.layers[1:], default=0),))
        self._step_views[batch, self.parts] = slices, squares, dense, by_name, zeros
        return slices, squares, dense, by_name, zeros

    def _dense_like(self, flat: np.ndarray) -> Params:
        """Views of a flat vector laid out as `_dense_flat`, by parameter name."""
        views, offset = {}, 0
        for name, param in self._dense.items():
            views[name] = flat[offset : offset + param.size].reshape(param.shape)
            offset += param.size
        return views

    def _reserve(self, batch_size: int) -> None:
        """Allocate the work buffers of a step on up to `batch_size` examples, so that helper processes
        forked afterwards share them (the table and its optimizer state are shared from `build` on)."""
        self._step_buffers(batch_size)

    def _backprop(
        self, user_idx: np.ndarray, item_idx: np.ndarray, labels: np.ndarray
    ) -> tuple[float, np.ndarray, np.ndarray | None]:
        """Loss and embedding gradient slices of a mini-batch (see `gradients`); the parts' dense
        gradients are left in their work buffers (`_dense_gradient` adds them).

        The batch is cut into `parts` parts whose forward and backward passes run in parallel
        (`_part`); each part writes its rows of the slices and its own dense gradient, and the parts'
        losses are added in a fixed order.

        Returns:
            (loss, slices (s, row width), the buffer for their squares when the optimizer
            `needs_squared_row_grads` else None (filled by `_update_side`)). Both are work buffers that
            the next step overwrites.
        """
        config, batch = self.config, labels.shape[0]
        self._batch = (user_idx, item_idx, labels)
        parts = min(self.parts, batch)
        bounds = [batch * k // parts for k in range(parts + 1)]
        tasks = [
            ("_part", (k, start, stop, batch, self._batch_start))
            for k, (start, stop) in enumerate(pairwise(bounds))
        ]
        # Dropout draws from one generator: the parts then run one after the other, in order, here.
        losses = [self._part(*args) for _, args in tasks] if config.dropout > 0 else self._run(tasks)
        loss = sum(losses)
        if config.l2:
            loss += config.l2 * sum(
                float(np.sum(np.square(param)))
                for name, param in self._dense.items()
                if name.endswith("kernel")
            )
        slices, squares, _, _, _ = self._step_buffers(batch)
        return loss, slices, squares

    def _dense_gradient(self, batch: int) -> np.ndarray:
        """The flat dense gradient (as `_dense_flat`) of the last `_backprop` on `batch` examples: the
        parts' gradients added in a fixed order (into the first part's work buffer), plus the L2 term."""
        _, _, dense_parts, _, _ = self._step_buffers(batch)
        dense_grad = dense_parts[0]
        for part_grad in dense_parts[1 : min(self.parts, batch)]:
            dense_grad += part_grad
        if self.config.l2:
            offset = 0
            for name, param in self._dense.items():
                if name.endswith("kernel"):
                    dense_grad[offset : offset + param.size] += self.dtype(2 * self.config.l2) * param.ravel()
                offset += param.size
        return dense_grad

    def _part(
        self,
        index: int,
        start: int,
        stop: int,
        batch: int,
        batch_start: int | None,
    ) -> float:
        """Forward and backward pass of examples [start, stop) of the step's batch of `batch` (see
        `_batch_arrays`); writes their gradient slices and the part's dense gradient into the step's work
        buffers and returns their share of the loss."""
        config = self.config
        user_idx, item_idx, labels = (array[start:stop] for array in self._batch_arrays(batch_start, batch))
        at = (2 if config.l2 else 1) * batch  # first slice of the item side
        slices, _, _, dense_grads, zeros = self._step_buffers(batch)
        pairs = np.empty((stop - start, 2), dtype=np.intp)  # (user row, item row) of each example
        pairs[:, 0] = user_idx
        np.add(item_idx, self.n_users, out=pairs[:, 1])
        width, f = self._table.shape[1], gmf_width(config)
        gathered = take_rows(self._table, pairs)  # (b, 2 width): [user GMF | user MLP | item MLP | item GMF]
        users, items = gathered[:, :width], gathered[:, width:]
        user_grads, item_grads = slices[start:stop], slices[at + start : at + stop]
        mlp = width - f  # MLP columns of a side
        both_mlp = gathered[:, f : f + 2 * mlp]  # [user MLP | item MLP]
        inputs = Rows(users[:, :f], items[:, mlp:], users[:, f:], items[:, :mlp], both_mlp)
        grads = Rows(user_grads[:, :f], item_grads[:, mlp:], user_grads[:, f:], item_grads[:, :mlp])
        rng = self._dropout_rng if config.dropout > 0 else None
        logits, cache = forward(config, self._dense, inputs, rng, zeros)
        loss, dlogits = log_loss_with_logits(logits, labels, batch)
        backward(config, self._dense, cache, dlogits, grads, dense_grads[index])
        if config.l2:
            loss += config.l2 * float(np.sum(np.square(gathered))) / batch
            scale = self.dtype(2 * config.l2 / batch)
            np.multiply(users, scale, out=slices[batch + start : batch + stop])
            np.multiply(items, scale, out=slices[at + batch + start : at + batch + stop])
        return loss

    def _work_buffer(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """An uninitialised (well, stale; zeros until written) array of `shape` and `dtype` in shared
        memory, the same one from step to step: fresh megabyte-sized arrays every step cost page faults
        whenever the allocator has handed their memory back to the system in between, and helper processes
        only see memory that existed when they were forked. Grows (only while there are no helpers) when a
        larger shape comes."""
        size = int(np.prod(shape))
        buffer = self._buffers.get(name)
        if buffer is None or buffer.size < size:
            if self._helpers:
                raise RuntimeError(f"work buffer {name} outgrown while helper processes share it")
            buffer = self._buffers[name] = shared_zeros((size,), self.dtype)
            self._step_views.clear()
        return buffer[:size].reshape(shape)
