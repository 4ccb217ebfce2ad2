"""`KerasNCF`: GMF / MLP / NeuMF (He et al. 2017) in Keras 3 on TensorFlow.

The network is a `keras.Model` of Embedding and Dense layers whose variables map one-to-one to the
engine-neutral parameter names of `model.ncf.params` (so `get_params` / `set_params` are exact copies).
It outputs logits; the log loss is computed from logits (numerically stable) and `score` applies the
sigmoid.

Speed: one `train_epoch` call runs a single compiled `tf.function` whose `tf.range` loop walks over all the
epoch's full mini-batches (arrays reshaped once to (n_batches, batch_size)); the trailing partial batch
gets one more call. There is no per-batch Python work. Scoring runs XLA-compiled forward passes over
chunks of pairs (padded to a power of two, so few shapes compile); `score_users` scores every item at once
with the structured trick of `model.ncf.scoring` (same maths, compiled).

Several workers: when `$TF_CONFIG` names a cluster of more than one task, the network and optimizer are
built inside a `tf.distribute.MultiWorkerMirroredStrategy` scope (`cluster_strategy`), every worker
holds a full copy of the variables, and each training step runs on the worker's slice of the global
mini-batch (`batch_size / workers` examples) with the gradients summed across workers by all-reduce (the
loss is scaled by 1 / workers, so the sum is the global batch's mean). Every worker must run the same
training with the same seeds, so they sample the same negatives and shuffle alike; the trailing partial
batch of an epoch is skipped (each worker must take the same number of steps), and the loop is not XLA
compiled (collectives). Without `$TF_CONFIG`, or with a single task, none of this is involved.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import tensorflow as tf

from model.ncf.base import NCFModel
from model.ncf.config import NCFConfig, TrainConfig
from model.ncf.params import Params, check_params, uses_gmf, uses_mlp

logger = logging.getLogger(__name__)

SCORE_CHUNK = 1 << 18  # pairs per compiled scoring call
USERS_CHUNK = 128  # users per compiled all-items call (memory: USERS_CHUNK * n_items * layers[1] floats)


class NCFNetwork(keras.Model):
    """GMF / MLP / NeuMF as Keras layers: inputs (users, items) int32 (b,) -> logits float32 (b,)."""

    def __init__(self, config: NCFConfig, n_users: int, n_items: int, seed: int) -> None:
        super().__init__(name=f"ncf_{config.kind}")
        self.config = config
        self.uses_gmf, self.uses_mlp = uses_gmf(config), uses_mlp(config)
        zeros = keras.initializers.Zeros()  # real values always come from set_params
        if self.uses_gmf:
            self.gmf_user = keras.layers.Embedding(n_users, config.factors, zeros, name="gmf_user_embedding")
            self.gmf_item = keras.layers.Embedding(n_items, config.factors, zeros, name="gmf_item_embedding")
        if self.uses_mlp:
            half = config.layers[0] // 2
            self.mlp_user = keras.layers.Embedding(n_users, half, zeros, name="mlp_user_embedding")
            self.mlp_item = keras.layers.Embedding(n_items, half, zeros, name="mlp_item_embedding")
            self.dense = [
                keras.layers.Dense(width, activation="relu", name=f"mlp_dense_{k}")
                for k, width in enumerate(config.layers[1:])
            ]
            self.dropout = [
                keras.layers.Dropout(config.dropout, seed=seed + k) for k in range(len(self.dense))
            ]
        self.out = keras.layers.Dense(1, name="output")

    def call(self, inputs, training: bool = False):
        users, items = inputs
        parts = []
        if self.uses_gmf:
            parts.append(self.gmf_user(users) * self.gmf_item(items))
        if self.uses_mlp:
            h = keras.ops.concatenate([self.mlp_user(users), self.mlp_item(items)], axis=-1)
            for dense, dropout in zip(self.dense, self.dropout, strict=True):
                h = dense(h)
                if self.config.dropout > 0.0:
                    h = dropout(h, training=training)
            parts.append(h)
        z = keras.ops.concatenate(parts, axis=-1) if len(parts) > 1 else parts[0]
        return self.out(z)[:, 0]

    def named_variables(self) -> dict[str, keras.Variable]:
        """Engine-neutral parameter name -> Keras variable, in `param_shapes` order."""
        named: dict[str, keras.Variable] = {}
        if self.uses_gmf:
            named["gmf/user_embedding"] = self.gmf_user.embeddings
            named["gmf/item_embedding"] = self.gmf_item.embeddings
        if self.uses_mlp:
            named["mlp/user_embedding"] = self.mlp_user.embeddings
            named["mlp/item_embedding"] = self.mlp_item.embeddings
            for k, dense in enumerate(self.dense):
                named[f"mlp/dense_{k}/kernel"] = dense.kernel
                named[f"mlp/dense_{k}/bias"] = dense.bias
        named["output/kernel"] = self.out.kernel
        named["output/bias"] = self.out.bias
        return named


_STRATEGY: tf.distribute.Strategy | None = None


def cluster_strategy() -> tf.distribute.Strategy | None:
    """The process's `MultiWorkerMirroredStrategy` when `$TF_CONFIG` names a cluster of more than one
    task, else None. Created once per process, on first use (TensorFlow allows one collective setup per
    process, before any other TensorFlow op runs)."""
    global _STRATEGY
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return None
    cluster = json.loads(raw).get("cluster", {})
    if sum(len(tasks) for tasks in cluster.values()) <= 1:
        return None
    if _STRATEGY is None:
        _STRATEGY = tf.distribute.MultiWorkerMirroredStrategy()
        resolver = _STRATEGY.cluster_resolver
        logger.info(
            "training with MultiWorkerMirroredStrategy: %s task %d of %d replicas",
            resolver.task_type,
            resolver.task_id,
            _STRATEGY.num_replicas_in_sync,
        )
    return _STRATEGY


def make_optimizer(train_config: TrainConfig) -> keras.optimizers.Optimizer:
    """Adam, or SGD with optional momentum, at `train_config.learning_rate`, with the decoupled weight
    decay of `train_config.weight_decay` when it is non-zero (Adam then is AdamW)."""
    decay = train_config.weight_decay or None  # Keras 3: decoupled, every variable, before the update
    lr = train_config.learning_rate
    if train_config.optimizer == "adam":
        return keras.optimizers.Adam(learning_rate=lr, weight_decay=decay)
    return keras.optimizers.SGD(learning_rate=lr, momentum=train_config.momentum, weight_decay=decay)


class KerasNCF(NCFModel):
    """NCF model trained and scored by Keras 3 / TensorFlow (see `NCFModel` for the interface)."""

    engine = "keras"

    def build(self, n_users: int, n_items: int, params: Params) -> None:
        """Create the network and optimizer, holding `params` (names/shapes per `model.ncf.params`)."""
        check_params(params, self.config, n_users, n_items)
        self.n_users, self.n_items = n_users, n_items
        self._strategy = cluster_strategy()
        with self._strategy.scope() if self._strategy is not None else contextlib.nullcontext():
            self.network = NCFNetwork(self.config, n_users, n_items, self.train_config.seed)
            self.network((tf.zeros((1,), tf.int32), tf.zeros((1,), tf.int32)))
            self._vars = self.network.named_variables()
            self._trainable = list(self._vars.values())
            self.optimizer = make_optimizer(self.train_config)
            self.optimizer.build(self._trainable)
        self.set_params(params)
        # XLA on CPU makes Keras' dropout masks ~40x slower (measured 14 K vs 223 K samples/s for the
        # ML-1M MLP tower at dropout 0.2), so the training loop is compiled by XLA only without dropout
        # (and never across workers: the all-reduce is a collective op).
        xla = self.config.dropout == 0.0 and self._strategy is None
        self._train_batches = tf.function(self._train_batches_impl, jit_compile=xla, reduce_retracing=True)
        self._logits = tf.function(self._logits_impl, jit_compile=True, reduce_retracing=True)
        self._all_logits = tf.function(self._all_logits_impl, jit_compile=True, reduce_retracing=True)

    def get_params(self) -> Params:
        return {name: np.array(var.numpy(), dtype=np.float32) for name, var in self._vars.items()}

    def set_params(self, params: Params) -> None:
        check_params(params, self.config, self.n_users, self.n_items)
        for name, var in self._vars.items():
            var.assign(np.asarray(params[name], dtype=np.float32))

    # --- training -----------------------------------------------------------------------------------
    def set_learning_rate(self, learning_rate: float) -> None:
        self.optimizer.learning_rate = learning_rate

    def _loss(self, users, items, labels):
        logits = self.network((users, items), training=True)
        loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits))
        if self.config.l2 > 0.0:
            loss += self.config.l2 * self._penalty(users, items)
        return loss

    def _penalty(self, users, items):
        """Squared L2 norm of the batch's embedding rows (per example) plus of every kernel."""
        rows = []
        for name, var in self._vars.items():
            if name.endswith("user_embedding"):
                rows.append(tf.reduce_sum(tf.square(tf.gather(var, users))))
            elif name.endswith("item_embedding"):
                rows.append(tf.reduce_sum(tf.square(tf.gather(var, items))))
        batch = tf.cast(tf.shape(users)[0], tf.float32)
        kernels = [tf.reduce_sum(tf.square(v)) for n, v in self._vars.items() if n.endswith("kernel")]
        return tf.add_n(rows) / batch + tf.add_n(kernels)

    def _step(self, users, items, labels):
        """One mini-batch: loss, gradients, update; returns the loss."""
        with tf.GradientTape() as tape:
            loss = self._loss(users, items, labels)
            # across workers the gradients are summed: scale so the sum is the global batch's mean
            scaled = loss if self._strategy is None else loss / self._strategy.num_replicas_in_sync
        grads = tape.gradient(scaled, self._trainable)
        self.optimizer.apply_gradients(zip(grads, self._trainable, strict=True))
        return loss

    def _train_batches_impl(self, users, items, labels):
        """users, items (n_batches, b) int32; labels (n_batches, b) float32 -> summed batch mean loss.
        Under the multi-worker strategy each step runs through `strategy.run` (the loop stays outside
        it: the all-reduce is a synchronisation point) and the loss is the workers' mean."""
        total = tf.constant(0.0, tf.float32)
        for i in tf.range(tf.shape(users)[0]):
            if self._strategy is None:
                total += self._step(users[i], items[i], labels[i])
            else:
                loss = self._strategy.run(self._step, args=(users[i], items[i], labels[i]))
                total += self._strategy.reduce(tf.distribute.ReduceOp.MEAN, loss, axis=None)
        return total

    def train_epoch(
        self, user_idx: np.ndarray, item_idx: np.ndarray, labels: np.ndarray, batch_size: int
    ) -> float:
        """One pass in mini-batches of `batch_size` (the last may be smaller); returns the mean log loss
        (plus the L2 term when `l2` > 0), weighted by batch size."""
        if self._strategy is not None:
            return self._train_epoch_workers(user_idx, item_idx, labels, batch_size)
        m = int(user_idx.shape[0])
        n_full = m // batch_size
        cut = n_full * batch_size
        total, seen = 0.0, 0
        users = np.ascontiguousarray(user_idx, dtype=np.int32)
        items = np.ascontiguousarray(item_idx, dtype=np.int32)
        labels = np.ascontiguousarray(labels, dtype=np.float32)
        if n_full:
            shape = (n_full, batch_size)
            s = self._train_batches(
                tf.constant(users[:cut].reshape(shape)),
                tf.constant(items[:cut].reshape(shape)),
                tf.constant(labels[:cut].reshape(shape)),
            )
            total += float(s) * batch_size
            seen += cut
        if cut < m:
            s = self._train_batches(
                tf.constant(users[None, cut:]),
                tf.constant(items[None, cut:]),
                tf.constant(labels[None, cut:]),
            )
            total += float(s) * (m - cut)
            seen += m - cut
        return total / max(seen, 1)

    def _train_epoch_workers(
        self, user_idx: np.ndarray, item_idx: np.ndarray, labels: np.ndarray, batch_size: int
    ) -> float:
        """`train_epoch` under the multi-worker strategy: every worker holds the whole epoch (same seeds)
        and trains on its column slice of each full mini-batch; the trailing partial batch is skipped.
        Returns the mean loss over the workers."""
        strategy = self._strategy
        workers, rank = strategy.num_replicas_in_sync, strategy.cluster_resolver.task_id
        if batch_size % workers:
            raise ValueError(f"batch_size {batch_size} is not a multiple of the {workers} workers")
        local = batch_size // workers
        n_full = int(user_idx.shape[0]) // batch_size
        if n_full == 0:
            return float("nan")
        cut, cols = n_full * batch_size, slice(rank * local, (rank + 1) * local)

        def part(array: np.ndarray, dtype: type) -> tf.Tensor:
            batches = np.asarray(array[:cut], dtype=dtype).reshape(n_full, batch_size)
            return tf.constant(np.ascontiguousarray(batches[:, cols]))

        total = self._train_batches(
            part(user_idx, np.int32), part(item_idx, np.int32), part(labels, np.float32)
        )
        return float(total) / n_full

    # --- scoring ------------------------------------------------------------------------------------
    def _logits_impl(self, users, items):
        return self.network((users, items), training=False)

    def _all_logits_impl(self, users):
        """Logits of every item for users (c,) int32 -> (c, n_items), structured like
        `model.ncf.scoring.logits_all_items`: GMF as a matrix product, the first MLP layer split into a
        user part and an item part computed once each."""
        net = self.network
        kernel = net.out.kernel[:, 0]
        out = tf.zeros((tf.shape(users)[0], self.n_items)) + net.out.bias[0]
        offset = 0
        if net.uses_gmf:
            f = self.config.factors
            user = tf.gather(net.gmf_user.embeddings, users) * kernel[:f]
            out += tf.matmul(user, net.gmf_item.embeddings, transpose_b=True)
            offset = f
        if net.uses_mlp:
            half = self.config.layers[0] // 2
            user = tf.gather(net.mlp_user.embeddings, users)
            item = net.mlp_item.embeddings
            if not net.dense:
                w = kernel[offset:]
                return out + (tf.linalg.matvec(user, w[:half])[:, None] + tf.linalg.matvec(item, w[half:]))
            w0 = net.dense[0].kernel
            h = tf.nn.relu(
                tf.matmul(user, w0[:half])[:, None, :] + (tf.matmul(item, w0[half:]) + net.dense[0].bias)
            )
            h = tf.reshape(h, (-1, tf.shape(h)[-1]))
            for dense in net.dense[1:]:
                h = tf.nn.relu(tf.matmul(h, dense.kernel) + dense.bias)
            out += tf.reshape(tf.linalg.matvec(h, kernel[offset:]), tf.shape(out))
        return out

    def score_users(self, user_idx: np.ndarray) -> np.ndarray:
        """(c,) int -> (c, n_items) float32 probabilities, compiled, USERS_CHUNK users per call."""
        users = np.asarray(user_idx, dtype=np.int32)
        out = np.empty((users.shape[0], self.n_items), dtype=np.float32)
        for start in range(0, users.shape[0], USERS_CHUNK):
            chunk = users[start : start + USERS_CHUNK]
            if chunk.shape[0] < USERS_CHUNK:  # pad: one compiled shape for every call
                chunk = np.concatenate([chunk, np.zeros(USERS_CHUNK - chunk.shape[0], np.int32)])
            probs = tf.sigmoid(self._all_logits(tf.constant(chunk))).numpy()
            out[start : start + USERS_CHUNK] = probs[: out[start : start + USERS_CHUNK].shape[0]]
        return out

    def score(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        """Probabilities of pairs: user_idx, item_idx (n,) int -> (n,) float32, in compiled chunks."""
        users = np.asarray(user_idx, dtype=np.int32)
        items = np.asarray(item_idx, dtype=np.int32)
        out = np.empty(users.shape[0], dtype=np.float32)
        for start in range(0, users.shape[0], SCORE_CHUNK):
            u, i = users[start : start + SCORE_CHUNK], items[start : start + SCORE_CHUNK]
            n = u.shape[0]
            padded = max(1024, 1 << (n - 1).bit_length())  # few distinct shapes -> few XLA compilations
            u = np.concatenate([u, np.zeros(padded - n, np.int32)])
            i = np.concatenate([i, np.zeros(padded - n, np.int32)])
            out[start : start + n] = tf.sigmoid(self._logits(tf.constant(u), tf.constant(i))).numpy()[:n]
        return out


__all__ = ["KerasNCF", "NCFNetwork", "cluster_strategy", "make_optimizer"]
