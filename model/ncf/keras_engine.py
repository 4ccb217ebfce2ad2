"""`KerasNCF`: GMF / MLP / NeuMF (He et al. 2017) in Keras 3 on TensorFlow.

The network is a `keras.Model` of Embedding and Dense layers whose variables map one-to-one to the
engine-neutral parameter names of `model.ncf.params` (so `get_params` / `set_params` are exact copies).
It outputs logits; the training loss (`TrainConfig.loss`: log loss, or the softmax loss over groups of a
positive and its negatives, `batch_loss`) is computed from logits (numerically stable) and `score`
applies the sigmoid.

Training (`train_epoch`): with `TrainConfig.embedding_updates` "dense" (the default) each step is Keras'
own optimizer (`make_optimizer`: Adam / AdamW, or SGD) over every variable, so every row of the embedding
tables takes Adam's (or momentum's) update at every step, at a cost O(table rows) per step. With "lazy",
the engine's `LazyOptimizer` (`model.ncf.keras_optimizer`) changes only the batch's rows and their moments,
as in the NumPy engine, at a cost O(batch) whatever the size of the tables (large catalogues). Lazy updates
of a side's (users' or items') tables are computed row-wise, or, when the tables have at most
`WHOLE_TABLE_ROWS` rows per example of the batch (ML-1M's, at the default 4,096 examples), by masked
passes over the whole tables, which is then cheaper; the results are the same.
The epoch goes to TensorFlow in slices of at most `SLICE_BATCHES` full mini-batches (arrays reshaped to
(batches, batch_size), the last slice padded to the same shape): each slice is one call of a
`tf.function` whose `tf.range` loop walks over its batches, so there is no per-batch Python work and the
inputs held by TensorFlow do not grow with the epoch; the trailing partial batch gets one more call.
With dense updates, or every side updated whole, a slice's loop and steps are one XLA program; with a
row-wise side, the loop and the rows' gathers and scatters run as TensorFlow ops and each step's
computation between them is one XLA program (`_core`): TensorFlow's own row gathers and scatters are
faster than XLA's on CPU (a row-wise step took 20-27% less CPU time this way than compiled whole, in
A/B step timings on ML-1M- and ML-20M-sized tables). Nothing is XLA-compiled when dropout is on (see `build`).
Scoring runs XLA-compiled forward passes over chunks of pairs (padded to a power of two, so few shapes
compile); `score_users` scores every item with the structured trick of `model.ncf.scoring` (same maths,
compiled), a cache-sized tile of users x items per step (`TILE_USERS`, `TILE_ITEMS`), so its pairs/s and
memory per call do not depend on the size of the catalogue.

Several workers: when `$TF_CONFIG` names a cluster of more than one task, the network and optimizer are
built inside a `tf.distribute.MultiWorkerMirroredStrategy` scope (`cluster_strategy`), every worker
holds a full copy of the variables, and each training step runs on the worker's slice of the global
mini-batch (`batch_size / workers` examples) with the gradients summed across workers by all-reduce (the
loss is scaled by 1 / workers, so the sum is the global batch's mean). Every worker must run the same
training with the same seeds, so they sample the same negatives and shuffle alike; the trailing partial
batch of an epoch is skipped (each worker must take the same number of steps), and the loop is not XLA
compiled (collectives). Only dense embedding updates are supported there. Without `$TF_CONFIG`, or with
a single task, none of this is involved.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import tensorflow as tf

from model.ncf.base import NCFModel
from model.ncf.config import NCFConfig, TrainConfig
from model.ncf.keras_optimizer import FOLD_BELOW, LazyOptimizer
from model.ncf.params import Params, check_params, uses_gmf, uses_mlp
from model.topn import available_cores

logger = logging.getLogger(__name__)

SIDES = ("user", "item")
SLICE_BATCHES = 256  # full mini-batches per compiled training call
SCORE_CHUNK = 1 << 18  # pairs per compiled scoring call
# All-items scoring: a compiled call walks over tiles of TILE_USERS users x TILE_ITEMS movies, so a tile's
# hidden layer (TILE_USERS * TILE_ITEMS * layers[1] float32, 2 MB at 64 units) stays in the cores' caches
# whatever the catalogue; a call holds whole tiles of users, at least PAIRS_PER_CALL pairs (fewer calls on
# small catalogues); calls run on `available_cores()` threads.
TILE_USERS = 32
TILE_ITEMS = 256
PAIRS_PER_CALL = 1 << 18


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
        rows = {}
        if self.uses_gmf:
            rows["gmf/user_embedding"] = self.gmf_user(users)
            rows["gmf/item_embedding"] = self.gmf_item(items)
        if self.uses_mlp:
            rows["mlp/user_embedding"] = self.mlp_user(users)
            rows["mlp/item_embedding"] = self.mlp_item(items)
        return self.head(rows, training=training)

    def head(self, rows: dict[str, tf.Tensor], training: bool = False):
        """Logits (b,) from the examples' embedding rows, by parameter name ("gmf/user_embedding": (b, f),
        ...): everything after the embedding lookups."""
        parts = []
        if self.uses_gmf:
            parts.append(rows["gmf/user_embedding"] * rows["gmf/item_embedding"])
        if self.uses_mlp:
            h = keras.ops.concatenate([rows["mlp/user_embedding"], rows["mlp/item_embedding"]], axis=-1)
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


def batch_loss(loss: str, group: int, logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    """The mean training loss of a mini-batch: logits, labels (b,) float32 -> scalar. `loss` "log": the
    mean sigmoid cross-entropy of the b examples. "softmax": the mean over the b / `group` groups
    (consecutive rows, the positive first) of log(sum exp(group logits)) minus the positive's logit (labels
    unused). `loss` and `group` are Python values (`TrainConfig.loss`, `TrainConfig.group_size()`), fixed
    when the step is traced."""
    if loss == "log":
        return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits))
    groups = tf.reshape(logits, (-1, group))
    return tf.reduce_mean(tf.reduce_logsumexp(groups, axis=1) - groups[:, 0])


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
    decay of `train_config.weight_decay` when it is non-zero (Adam then is AdamW): the dense updates."""
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
        self.lazy = self.train_config.embedding_updates == "lazy"
        self._loss = (self.train_config.loss, self.train_config.group_size())  # batch_loss's, as traced
        self._strategy = cluster_strategy()
        if self._strategy is not None and self.lazy:
            raise ValueError("training on several workers ($TF_CONFIG) supports dense embedding updates only")
        with self._strategy.scope() if self._strategy is not None else contextlib.nullcontext():
            self.network = NCFNetwork(self.config, n_users, n_items, self.train_config.seed)
            self.network((tf.zeros((1,), tf.int32), tf.zeros((1,), tf.int32)))
            self._vars = self.network.named_variables()
            self._tables = {name: var for name, var in self._vars.items() if name.endswith("_embedding")}
            self._dense = [var for name, var in self._vars.items() if name not in self._tables]
            if self.lazy:
                sides = {s: [v for n, v in self._tables.items() if _side(n) == s] for s in SIDES}
                self.optimizer = LazyOptimizer(self.train_config, self._dense, sides)
            else:
                self.optimizer = make_optimizer(self.train_config)
                self.optimizer.build(list(self._vars.values()))
        self.set_params(params)
        # XLA on CPU makes Keras' dropout masks ~40x slower (measured 14 K vs 223 K samples/s for the
        # ML-1M MLP tower at dropout 0.2), so the training loop is compiled by XLA only without dropout
        # (and never across workers: the all-reduce is a collective op).
        xla = self.config.dropout == 0.0 and self._strategy is None
        # Dense updates: the loop over a slice and Keras' steps are one compiled program. Lazy updates:
        # when every side is updated whole, the same; when a side is updated row-wise, the loop and the
        # rows' gathers and scatters run as TensorFlow ops (faster per row than XLA's on CPU) and each
        # step's computation between them (`_core`) is compiled.
        self._train_slice_dense = tf.function(self._dense_slice_impl, jit_compile=xla, reduce_retracing=True)
        self._train_slice_whole = tf.function(
            lambda *args: self._train_slice_impl(*args, rowwise=(), core=self._core_impl),
            jit_compile=xla,
            reduce_retracing=True,
        )
        self._core = tf.function(self._core_impl, jit_compile=xla, reduce_retracing=True)
        self._train_slice_rowwise = tf.function(
            lambda *args, rowwise: self._train_slice_impl(*args, rowwise=rowwise, core=self._core),
            reduce_retracing=True,
        )
        self._logits = tf.function(self._logits_impl, jit_compile=True, reduce_retracing=True)
        self._all_probs = tf.function(self._all_probs_impl, jit_compile=True, reduce_retracing=True)
        self._item_side = tf.function(self._item_side_impl, jit_compile=True)

    def get_params(self) -> Params:
        return {name: np.array(var.numpy(), dtype=np.float32) for name, var in self._vars.items()}

    def set_params(self, params: Params) -> None:
        check_params(params, self.config, self.n_users, self.n_items)
        for name, var in self._vars.items():
            var.assign(np.asarray(params[name], dtype=np.float32))

    # --- training -----------------------------------------------------------------------------------
    def set_learning_rate(self, learning_rate: float) -> None:
        if self.lazy:
            self.optimizer.set_learning_rate(learning_rate)
        else:
            self.optimizer.learning_rate = learning_rate

    # dense updates: Keras' optimizer over every variable
    def _dense_loss(self, users, items, labels):
        logits = self.network((users, items), training=True)
        loss = batch_loss(*self._loss, logits, labels)
        if self.config.l2 > 0.0:
            loss += self.config.l2 * self._penalty(users, items)
        return loss

    def _penalty(self, users, items):
        """Squared L2 norm of the batch's embedding rows (per example) plus of every kernel."""
        rows = []
        for name, var in self._tables.items():
            rows.append(tf.reduce_sum(tf.square(tf.gather(var, users if _side(name) == "user" else items))))
        batch = tf.cast(tf.shape(users)[0], tf.float32)
        kernels = [tf.reduce_sum(tf.square(v)) for n, v in self._vars.items() if n.endswith("kernel")]
        return tf.add_n(rows) / batch + tf.add_n(kernels)

    def _dense_step(self, users, items, labels):
        """One Keras optimizer step on one mini-batch (b,) -> its mean loss. Across workers the gradients
        are summed, so the loss is scaled by 1 / workers for the sum to be the global batch's mean."""
        trainable = list(self._vars.values())
        with tf.GradientTape() as tape:
            loss = self._dense_loss(users, items, labels)
            scaled = loss if self._strategy is None else loss / self._strategy.num_replicas_in_sync
        grads = tape.gradient(scaled, trainable)
        self.optimizer.apply_gradients(zip(grads, trainable, strict=True))
        return loss

    def _dense_slice_impl(self, users, items, labels, n_batches):
        """users, items (s, b) int32; labels (s, b) float32; one Keras optimizer step on each of the first
        `n_batches` rows -> the sum of their batch mean losses. Under the multi-worker strategy each step
        runs through `strategy.run` (the loop stays outside it: the all-reduce is a synchronisation
        point) and the loss is the workers' mean."""
        total = tf.constant(0.0, tf.float32)
        for i in tf.range(n_batches):
            if self._strategy is None:
                total += self._dense_step(users[i], items[i], labels[i])
            else:
                loss = self._strategy.run(self._dense_step, args=(users[i], items[i], labels[i]))
                total += self._strategy.reduce(tf.distribute.ReduceOp.MEAN, loss, axis=None)
        return total

    # lazy updates: `LazyOptimizer`, the batch's rows only

    def _train_step(self, users, items, labels, rowwise, core):
        """One optimizer step on one mini-batch: users, items (b,) int32, labels (b,) float32 -> its mean
        log loss (plus the L2 term when `l2` > 0). `rowwise`: the sides updated row-wise (the others
        whole); `core`: `_core_impl`, or `_core` (its compiled form)."""
        opt = self.optimizer
        index = {"user": users, "item": items}
        gathered = {side: opt.gather_rows(side, index[side]) for side in rowwise}
        loss, updated = core(users, items, labels, gathered)
        for side in rowwise:
            opt.scatter_rows(side, index[side], *updated[side])
        return loss

    def _core_impl(self, users, items, labels, gathered):
        """Forward and backward passes, the dense layers' update and the embedding rows' update: all of a
        step but the row-wise sides' gathers (`gathered`, side -> `Optimizer.gather_rows`) and
        scatters (the new values are returned, side -> (per table, rows; state))."""
        opt, l2 = self.optimizer, self.config.l2
        index = {"user": users, "item": items}
        scale = opt.scale.read_value()  # the tables hold the parameters / scale
        names = {side: [name for name in self._tables if _side(name) == side] for side in SIDES}
        stored = {}
        for side in SIDES:
            if side in gathered:
                stored.update(zip(names[side], gathered[side][0], strict=True))
            else:
                stored.update({name: tf.gather(self._tables[name], index[side]) for name in names[side]})
        rows = {name: stored[name] * scale for name in self._tables}
        with tf.GradientTape() as tape:
            tape.watch(list(rows.values()))
            logits = self.network.head(rows, training=True)
            loss = batch_loss(*self._loss, logits, labels)
            if l2 > 0.0:
                kernels = [tf.reduce_sum(tf.square(v)) for n, v in self._vars.items() if n.endswith("kernel")]
                loss += l2 * tf.add_n(kernels)
        grads = tape.gradient(loss, [*rows.values(), *self._dense])
        row_grads = dict(zip(rows, grads[: len(rows)], strict=True))
        batch = tf.cast(tf.shape(labels)[0], tf.float32)
        if l2 > 0.0:
            # The embedding rows' penalty, l2 * sum of the batch's squared rows / b, has per-example
            # gradient slices of its own (as in Keras' IndexedSlices and the NumPy engine).
            loss += l2 * tf.add_n([tf.reduce_sum(tf.square(r)) for r in rows.values()]) / batch
        new_scale = opt.begin_step()
        opt.update_dense(grads[len(rows) :])
        updated = {}
        for side in SIDES:
            side_grads = [row_grads[n] for n in names[side]]
            penalties = [rows[n] * (2.0 * l2 / batch) for n in names[side]] if l2 > 0.0 else None
            if side in gathered:
                _, slots, representative = gathered[side]
                side_stored = [stored[n] for n in names[side]]
                updated[side] = opt.update_rows(
                    side_stored, slots, representative, side_grads, penalties, new_scale
                )
            else:
                opt.update_whole(side, index[side], side_grads, penalties, new_scale)
        return loss, updated

    def _train_slice_impl(self, users, items, labels, n_batches, rowwise, core):
        """users, items (s, b) int32; labels (s, b) float32; the first `n_batches` rows are trained on, one
        step each (`_train_step`) -> the sum of their batch mean losses."""
        total = tf.constant(0.0, tf.float32)
        for i in tf.range(n_batches):
            total += self._train_step(users[i], items[i], labels[i], rowwise, core)
        return total

    def _train_slice(self, users, items, labels, n_batches: int) -> float:
        """One slice of batches on NumPy arrays: by `_train_slice_dense` (dense updates), else by
        `_train_slice_whole` when every side is updated whole, else by `_train_slice_rowwise`."""
        if not self.lazy:
            return float(self._train_slice_dense(users, items, labels, tf.constant(n_batches, tf.int32)))
        rowwise = tuple(side for side in SIDES if not self.optimizer.whole_table(side, users.shape[1]))
        args = (users, items, labels, tf.constant(n_batches, tf.int32))
        if rowwise:
            return float(self._train_slice_rowwise(*args, rowwise=rowwise))
        return float(self._train_slice_whole(*args))

    def train_epoch(
        self, user_idx: np.ndarray, item_idx: np.ndarray, labels: np.ndarray, batch_size: int
    ) -> float:
        """One pass in mini-batches of `batch_size` (the last may be smaller); returns the mean training
        loss (plus the L2 term when `l2` > 0), weighted by batch size."""
        self.train_config.check_groups(user_idx.shape[0], batch_size)
        if self._strategy is not None:
            return self._train_epoch_workers(user_idx, item_idx, labels, batch_size)
        m = int(user_idx.shape[0])
        n_full = m // batch_size
        cut = n_full * batch_size
        total = 0.0
        arrays = [
            np.ascontiguousarray(user_idx, dtype=np.int32),
            np.ascontiguousarray(item_idx, dtype=np.int32),
            np.ascontiguousarray(labels, dtype=np.float32),
        ]
        opt = self.optimizer if self.lazy else None
        # (lazy updates: the scale must stay far from float32 underflow)
        between_folds = opt.steps_between_folds() if opt else n_full
        try:
            if n_full:
                per_call = min(SLICE_BATCHES, n_full)  # one compiled shape: (per_call, batch_size)
                full = [a[:cut].reshape(n_full, batch_size) for a in arrays]
                start = 0
                while start < n_full:
                    n = min(per_call, n_full - start, between_folds)
                    parts = [_padded(a[start : start + n], per_call) for a in full]
                    total += self._train_slice(*parts, n) * batch_size
                    if opt:
                        opt.fold(below=FOLD_BELOW)
                    start += n
            if cut < m:
                tail = [a[None, cut:] for a in arrays]
                total += self._train_slice(*tail, 1) * (m - cut)
        finally:
            if opt:
                opt.fold()  # the tables hold the parameters again
        return total / max(m, 1)

    def _train_epoch_workers(
        self, user_idx: np.ndarray, item_idx: np.ndarray, labels: np.ndarray, batch_size: int
    ) -> float:
        """`train_epoch` under the multi-worker strategy: every worker holds the whole epoch (same seeds)
        and trains on its column slice of each full mini-batch, in slices of `SLICE_BATCHES` batches; the
        trailing partial batch is skipped. Returns the mean loss over the workers and batches."""
        strategy = self._strategy
        workers, rank = strategy.num_replicas_in_sync, strategy.cluster_resolver.task_id
        if batch_size % workers:
            raise ValueError(f"batch_size {batch_size} is not a multiple of the {workers} workers")
        local = batch_size // workers
        self.train_config.check_groups(0, local)
        n_full = int(user_idx.shape[0]) // batch_size
        if n_full == 0:
            return float("nan")
        cut, cols = n_full * batch_size, slice(rank * local, (rank + 1) * local)
        parts = [
            np.ascontiguousarray(np.asarray(a[:cut], dtype=dtype).reshape(n_full, batch_size)[:, cols])
            for a, dtype in ((user_idx, np.int32), (item_idx, np.int32), (labels, np.float32))
        ]
        per_call = min(SLICE_BATCHES, n_full)
        total = 0.0
        for start in range(0, n_full, per_call):
            n = min(per_call, n_full - start)
            chunk = [tf.constant(_padded(a[start : start + n], per_call)) for a in parts]
            total += float(self._train_slice_dense(*chunk, tf.constant(n, tf.int32)))
        return total / n_full

    # --- scoring ------------------------------------------------------------------------------------
    def _logits_impl(self, users, items):
        return self.network((users, items), training=False)

    def _item_side_impl(self):
        """The items' side of `_all_probs_impl`, zero rows appended up to a whole number of `TILE_ITEMS`:
        (GMF item embeddings (n_pad, factors), the items' part of the first MLP layer (n_pad, layers[1]):
        item embeddings times their half of the kernel, plus the bias; (n_pad, 1) times the output
        kernel's half for an MLP without hidden layers). A tower the model lacks gives (n_pad, 0)."""
        net = self.network
        empty = tf.zeros((self.n_items, 0))
        gmf = net.gmf_item.embeddings if net.uses_gmf else empty
        mlp = empty
        if net.uses_mlp:
            half = self.config.layers[0] // 2
            item = net.mlp_item.embeddings
            if not net.dense:
                w = net.out.kernel[:, 0][self.config.factors if net.uses_gmf else 0 :]
                mlp = tf.linalg.matvec(item, w[half:])[:, None]
            else:
                mlp = tf.matmul(item, net.dense[0].kernel[half:]) + net.dense[0].bias
        pad = [[0, -self.n_items % TILE_ITEMS], [0, 0]]
        return tf.pad(gmf, pad), tf.pad(mlp, pad)

    def _all_probs_impl(self, users, gmf_items, mlp_items):
        """Probabilities of every item for users (c,) int32, c a multiple of `TILE_USERS` -> (c, n_pad)
        float32, with the items' side from `_item_side_impl`; the maths of
        `model.ncf.scoring.logits_all_items` (GMF as a matrix product, the first MLP layer split into a
        user part and an item part), one tile of `TILE_USERS` x `TILE_ITEMS` pairs per step of a compiled
        loop."""
        net = self.network
        kernel = net.out.kernel[:, 0]
        user_tiles, item_tiles = users.shape[0] // TILE_USERS, mlp_items.shape[0] // TILE_ITEMS
        f = self.config.factors if net.uses_gmf else 0
        if net.uses_gmf:
            gmf_users = tf.gather(net.gmf_user.embeddings, users) * kernel[:f]
        if net.uses_mlp:
            half = self.config.layers[0] // 2
            user = tf.gather(net.mlp_user.embeddings, users)
            if not net.dense:
                mlp_users = tf.linalg.matvec(user, kernel[f:][:half])[:, None]
            else:
                mlp_users = tf.matmul(user, net.dense[0].kernel[:half])

        def tile(j, probs):
            first_user, first_item = (j // item_tiles) * TILE_USERS, (j % item_tiles) * TILE_ITEMS
            out = tf.zeros((TILE_USERS, TILE_ITEMS)) + net.out.bias[0]
            if net.uses_gmf:
                user = tf.slice(gmf_users, [first_user, 0], [TILE_USERS, f])
                items = tf.slice(gmf_items, [first_item, 0], [TILE_ITEMS, f])
                out += tf.matmul(user, items, transpose_b=True)
            if net.uses_mlp:
                width = mlp_items.shape[1]
                user = tf.slice(mlp_users, [first_user, 0], [TILE_USERS, width])
                items = tf.slice(mlp_items, [first_item, 0], [TILE_ITEMS, width])
                if not net.dense:
                    out += user + tf.transpose(items)
                else:
                    h = tf.reshape(tf.nn.relu(user[:, None, :] + items[None]), (-1, width))
                    for dense in net.dense[1:]:
                        h = tf.nn.relu(tf.matmul(h, dense.kernel) + dense.bias)
                    out += tf.reshape(tf.linalg.matvec(h, kernel[f:]), (TILE_USERS, TILE_ITEMS))
            return j + 1, probs.write(j, tf.sigmoid(out))

        n_tiles = user_tiles * item_tiles
        _, probs = tf.while_loop(
            lambda j, _: j < n_tiles, tile, (tf.constant(0), tf.TensorArray(tf.float32, size=n_tiles))
        )
        tiles = tf.reshape(probs.stack(), (user_tiles, item_tiles, TILE_USERS, TILE_ITEMS))
        return tf.reshape(tf.transpose(tiles, (0, 2, 1, 3)), (users.shape[0], item_tiles * TILE_ITEMS))

    def score_users(self, user_idx: np.ndarray) -> np.ndarray:
        """(c,) int -> (c, n_items) float32 probabilities: compiled calls of `users_per_call` users (the
        last padded), on `available_cores()` threads (TensorFlow runs calls concurrently)."""
        users = np.asarray(user_idx, dtype=np.int32)
        out = np.empty((users.shape[0], self.n_items), dtype=np.float32)
        item_side = self._item_side()
        step = self.users_per_call

        def call(start: int) -> None:
            chunk = users[start : start + step]
            n = chunk.shape[0]
            if n < step:  # pad: one compiled shape for every call
                chunk = np.concatenate([chunk, np.zeros(step - n, np.int32)])
            probs = self._all_probs(tf.constant(chunk), *item_side).numpy()
            out[start : start + n] = probs[:n, : self.n_items]

        starts = range(0, users.shape[0], step)
        threads = min(available_cores(), len(starts))
        if threads <= 1:
            for start in starts:
                call(start)
        else:
            with ThreadPoolExecutor(max_workers=threads) as pool:
                list(pool.map(call, starts))
        return out

    @property
    def users_per_call(self) -> int:
        """Users per compiled all-items call: whole `TILE_USERS` tiles, at least `PAIRS_PER_CALL` pairs."""
        n_pad = -(-self.n_items // TILE_ITEMS) * TILE_ITEMS
        return TILE_USERS * max(1, PAIRS_PER_CALL // (TILE_USERS * n_pad))

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


def _side(name: str) -> str:
    """ "user" or "item": which index an embedding table's rows are looked up by."""
    return "user" if name.endswith("user_embedding") else "item"


def _padded(batches: np.ndarray, n: int) -> np.ndarray:
    """(k, b) -> (n, b), k <= n, the rows past k zero (never trained on)."""
    if batches.shape[0] == n:
        return batches
    out = np.zeros((n, batches.shape[1]), dtype=batches.dtype)
    out[: batches.shape[0]] = batches
    return out


__all__ = ["SLICE_BATCHES", "KerasNCF", "NCFNetwork", "cluster_strategy", "make_optimizer"]
