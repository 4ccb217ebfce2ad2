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

from model.ncf.base import NCFModel
from model.ncf.config import NCFConfig, TrainConfig
from model.ncf.numpy_network import backward, dense_names, forward, gmf_width, log_loss_with_logits
from model.ncf.numpy_optimizers import SGD, Adam, Optimizer
from model.ncf.numpy_sparse import sum_rows
from model.ncf.params import Params, check_params, uses_gmf, uses_mlp
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
        """Copy `params` into the engine's tables and start a fresh optimizer (float32)."""
        check_params(params, self.config, n_users, n_items)
        self.n_users, self.n_items = n_users, n_items
        self._tables = {
            side: np.concatenate([params[n] for n in _embedding_names(self.config, side)], axis=1).astype(
                self.dtype
            )
            for side in ("user", "item")
        }
        self._dense = {name: np.array(params[name], dtype=self.dtype) for name in dense_names(self.config)}
        self._optimizer = make_optimizer(self.train_config)
        self._dropout_rng = np.random.default_rng([self.train_config.seed, 1])

    def _views(self) -> Params:
        """Parameters by engine-neutral name as views into the engine's arrays (no copy)."""
        f = gmf_width(self.config)
        views: Params = {}
        for side, table in self._tables.items():
            if uses_gmf(self.config):
                views[f"gmf/{side}_embedding"] = table[:, :f]
            if uses_mlp(self.config):
                views[f"mlp/{side}_embedding"] = table[:, f:]
        views.update(self._dense)
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
        """One pass in mini-batches of `batch_size`, in the given order; returns the mean log loss."""
        labels = np.asarray(labels, dtype=self.dtype)
        total = 0.0
        for start in range(0, labels.shape[0], batch_size):
            stop = start + batch_size
            loss = self.train_step(user_idx[start:stop], item_idx[start:stop], labels[start:stop])
            total += loss * (min(stop, labels.shape[0]) - start)
        return total / max(labels.shape[0], 1)

    def train_step(self, user_idx: np.ndarray, item_idx: np.ndarray, labels: np.ndarray) -> float:
        """One optimizer step on one mini-batch: (B,) int, (B,) int, (B,) float32; returns its mean log loss
        (without the L2 penalty)."""
        loss, row_grads, dense_grads = self.gradients(user_idx, item_idx, labels)
        self._optimizer.step()
        for name, param in self._dense.items():
            self._optimizer.update(name, param, dense_grads[name])
        for side, (rows, grad) in row_grads.items():
            self._optimizer.update_rows(side, self._tables[side], rows, grad)
        return loss

    def gradients(
        self, user_idx: np.ndarray, item_idx: np.ndarray, labels: np.ndarray
    ) -> tuple[float, dict[str, tuple[np.ndarray, np.ndarray]], Params]:
        """Mean log loss of a mini-batch and the gradients of `objective`.

        Returns:
            (log loss, {"user" | "item": (touched rows (u,), summed row gradients (u, row width))},
            gradients of the dense parameters by name).
        """
        config = self.config
        rng = self._dropout_rng if config.dropout > 0 else None
        user_rows, item_rows = self._tables["user"][user_idx], self._tables["item"][item_idx]
        logits, cache = forward(config, self._dense, user_rows, item_rows, rng)
        loss, dlogits = log_loss_with_logits(logits, labels.astype(self.dtype, copy=False))
        d_user, d_item, dense_grads = backward(config, self._dense, cache, dlogits)
        row_grads = {"user": sum_rows(user_idx, d_user), "item": sum_rows(item_idx, d_item)}
        if config.l2:
            l2 = self.dtype(2 * config.l2)
            for name, param in self._dense.items():
                if name.endswith("kernel"):
                    dense_grads[name] += l2 * param
            for side, (rows, grad) in row_grads.items():
                grad += l2 * self._tables[side][rows]
        return loss, row_grads, dense_grads

    def objective(self, user_idx: np.ndarray, item_idx: np.ndarray, labels: np.ndarray) -> float:
        """What `gradients` differentiates: mean log loss + l2 * (squared norm of the kernels and of the
        embedding rows the batch touches)."""
        config = self.config
        rng = self._dropout_rng if config.dropout > 0 else None
        user_rows, item_rows = self._tables["user"][user_idx], self._tables["item"][item_idx]
        logits, _ = forward(config, self._dense, user_rows, item_rows, rng)
        loss, _ = log_loss_with_logits(logits, labels.astype(self.dtype, copy=False))
        penalty = sum(float(np.sum(p**2)) for n, p in self._dense.items() if n.endswith("kernel"))
        for side, indices in (("user", user_idx), ("item", item_idx)):
            penalty += float(np.sum(self._tables[side][np.unique(indices)] ** 2))
        return loss + config.l2 * penalty
