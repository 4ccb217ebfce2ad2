"""`NumpyNCF`: the from-scratch NumPy engine of GMF / MLP / NeuMF (no autodiff library).

Training step on a mini-batch of B (user, item, label) examples:
1. gather the user and item rows of the embedding tables (GMF and MLP parts are stored side by side in one
   table per side, so a batch does one gather and one scatter per side);
2. forward pass and stable log loss on logits (`model.ncf.numpy_network`);
3. hand-written backward pass;
4. sum the per-example row gradients per touched row (`model.ncf.numpy_sparse`) and update only those rows
   and their optimizer state; dense layers get an ordinary update (`model.ncf.numpy_optimizers`).

Parameters are float32 and use the engine-neutral names and shapes of `model.ncf.params`, so weights copy
to and from the Keras engine and save/load share one layout.
"""

from __future__ import annotations

import logging

import numpy as np
from threadpoolctl import threadpool_limits

from model.ncf.base import NCFModel
from model.ncf.config import NCFConfig, TrainConfig
from model.ncf.numpy_network import backward, dense_names, forward, gmf_width, log_loss_with_logits
from model.ncf.numpy_optimizers import SGD, Adam, Optimizer
from model.ncf.numpy_sparse import sum_rows
from model.ncf.params import Params, check_params, param_shapes, uses_gmf, uses_mlp
from model.ncf.scoring import score_pairs

logger = logging.getLogger(__name__)


def make_optimizer(train_config: TrainConfig) -> Optimizer:
    """The optimizer `train_config` asks for."""
    if train_config.optimizer == "adam":
        return Adam(train_config.learning_rate)
    return SGD(train_config.learning_rate, momentum=train_config.momentum)


def _embedding_names(config: NCFConfig, side: str) -> list[str]:
    names = []
    if uses_gmf(config):
        names.append(f"gmf/{side}_embedding")
    if uses_mlp(config):
        names.append(f"mlp/{side}_embedding")
    return names


class NumpyNCF(NCFModel):
    """GMF / MLP / NeuMF trained by hand-written backpropagation in NumPy; see the module docstring."""

    engine = "numpy"
    dtype: type[np.floating] = np.float32  # of parameters, activations and optimizer state

    def build(self, n_users: int, n_items: int, params: Params) -> None:
        """Copy `params` into the engine's arrays and start a fresh optimizer (float32)."""
        check_params(params, self.config, n_users, n_items)
        self.n_users, self.n_items = n_users, n_items
        # One embedding table: rows [0, n_users) are users, rows [n_users, n_users + n_items) items; each
        # row is [GMF part | MLP part]. A batch then needs one gather, one row-gradient sum and one
        # optimizer call for all four embedding parameters.
        sides = [
            np.concatenate([params[n] for n in _embedding_names(self.config, side)], axis=1)
            for side in ("user", "item")
        ]
        self._table = np.concatenate(sides, axis=0).astype(self.dtype)
        # Dense parameters are views into one flat vector, so the optimizer updates them in one go.
        names = dense_names(self.config)
        self._dense_flat = np.concatenate([np.ravel(params[n]) for n in names]).astype(self.dtype)
        self._dense, offset = {}, 0
        for name in names:
            size = params[name].size
            self._dense[name] = self._dense_flat[offset : offset + size].reshape(params[name].shape)
            offset += size
        self._optimizer = make_optimizer(self.train_config)
        self._dropout_rng = np.random.default_rng([self.train_config.seed, 1])

    def _views(self) -> Params:
        """Parameters by engine-neutral name, in `param_shapes` order, as views into the engine's arrays."""
        f = gmf_width(self.config)
        sides = {"user": self._table[: self.n_users], "item": self._table[self.n_users :]}
        views: Params = {}
        for name in param_shapes(self.config, self.n_users, self.n_items):
            part, _, kind = name.partition("/")
            if kind in ("user_embedding", "item_embedding"):
                table = sides[kind.removesuffix("_embedding")]
                views[name] = table[:, :f] if part == "gmf" else table[:, f:]
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

    def train_epoch(
        self, user_idx: np.ndarray, item_idx: np.ndarray, labels: np.ndarray, batch_size: int
    ) -> float:
        """One pass in mini-batches of `batch_size`, in the given order; returns the mean training loss
        (log loss, plus the L2 term when `l2` > 0), weighted by batch size.

        BLAS runs single-threaded here: the matrices are small (batch x 64), so threads only add overhead,
        and on a shared, loaded machine OpenBLAS threads slowed training several-fold in our runs.
        """
        labels = np.asarray(labels, dtype=self.dtype)
        total = 0.0
        with threadpool_limits(limits=1, user_api="blas"):
            for start in range(0, labels.shape[0], batch_size):
                stop = start + batch_size
                loss = self.train_step(user_idx[start:stop], item_idx[start:stop], labels[start:stop])
                total += loss * (min(stop, labels.shape[0]) - start)
        return total / max(labels.shape[0], 1)

    def train_step(self, user_idx: np.ndarray, item_idx: np.ndarray, labels: np.ndarray) -> float:
        """One optimizer step on one mini-batch: (B,) int, (B,) int, (B,) float; returns its loss."""
        loss, indices, d_rows, dense_grads = self.gradients(user_idx, item_idx, labels)
        self._optimizer.step()
        flat_grad = np.concatenate([dense_grads[name].ravel() for name in self._dense])
        self._optimizer.update("dense", self._dense_flat, flat_grad)
        if self._optimizer.needs_squared_row_grads:  # summed in the same sparse product as the gradients
            width = d_rows.shape[1]
            rows, sums = sum_rows(indices, np.concatenate([d_rows, np.square(d_rows)], axis=1))
            self._optimizer.update_rows("embedding", self._table, rows, sums[:, :width], sums[:, width:])
        else:
            rows, grad = sum_rows(indices, d_rows)
            self._optimizer.update_rows("embedding", self._table, rows, grad)
        return loss

    def gradients(
        self, user_idx: np.ndarray, item_idx: np.ndarray, labels: np.ndarray
    ) -> tuple[float, np.ndarray, np.ndarray, Params]:
        """Loss of a mini-batch and its gradients, by the hand-written backward pass.

        loss = mean log loss + l2 * (sum over the B examples of their squared embedding rows / B + squared
        norm of every kernel), the same penalty as the Keras engine.

        Returns:
            (loss, indices (s,) embedding-table rows, gradient slices (s, row width), gradients of the
            dense parameters by name). The slices are per example, users first then items (at row
            n_users + item); with L2 the penalty's slices follow as separate slices (s = 4B, else 2B),
            like the `tf.IndexedSlices` Keras builds. A row's gradient is the sum of its slices
            (`sum_rows`); Adam's second moment sums their squares.
        """
        config = self.config
        batch = labels.shape[0]
        indices = np.concatenate([user_idx, item_idx + self.n_users])
        rows = np.take(self._table, indices, axis=0)  # (2B, w): the users' rows, then the items'
        rng = self._dropout_rng if config.dropout > 0 else None
        logits, cache = forward(config, self._dense, rows[:batch], rows[batch:], rng)
        loss, dlogits = log_loss_with_logits(logits, labels.astype(self.dtype, copy=False))
        d_rows, dense_grads = backward(config, self._dense, cache, dlogits)
        if config.l2:
            loss += config.l2 * float(np.sum(np.square(rows))) / batch
            indices = np.concatenate([indices, indices])
            d_rows = np.concatenate([d_rows, self.dtype(2 * config.l2 / batch) * rows])
            for name, param in self._dense.items():
                if name.endswith("kernel"):
                    loss += config.l2 * float(np.sum(np.square(param)))
                    dense_grads[name] += self.dtype(2 * config.l2) * param
        return loss, indices, d_rows, dense_grads
