"""`LazyOptimizer`: Adam or SGD (with momentum) for the Keras engine's lazy embedding updates
(`TrainConfig.embedding_updates` "lazy"): only the batch's rows of the embedding tables and their moments
change, so a step costs O(batch), not O(embedding tables). Dense updates use Keras' own optimizers
(`model.ncf.keras_engine.make_optimizer`).

The update rules are those of `model.ncf.numpy_optimizers` (themselves Keras 3's formulas):
- dense parameters (kernels, biases): decoupled weight decay first (p -= p * lr * wd), then Adam
  (m += (g - m)(1 - b1); v += (g^2 - v)(1 - b2); p -= lr sqrt(1 - b2^t) / (1 - b1^t) m / (sqrt(v) + eps),
  t = steps taken) or SGD (v = momentum v - lr g; p += v, or p -= lr g without momentum).
- embedding tables: only the rows in the batch, and only their moments (or velocities), change; the bias
  correction uses the global step count t (the NumPy engine's semantics). A row's gradient is the sum of
  its per-example slices, and Adam's second moment adds the sum of the slices' squares (not the square of
  their sum), as Keras does with the `tf.IndexedSlices` of an Embedding and the NumPy engine does too.
- decoupled weight decay on embedding tables: every row of every table shrinks by (1 - lr * wd) at every
  step, in the batch or not (as Keras' AdamW and the NumPy engine do). Here this costs O(1) per step: the
  tables hold the parameters divided by one shared scalar `scale` (parameter = scale * stored row), a step
  multiplies `scale` by (1 - lr * wd), and a touched row is stored as (its decayed value - the
  optimizer's step) / scale. `fold` multiplies the scale back into the tables (O(tables), scale = 1): the
  engine calls it between slices of an epoch once the scale is below `FOLD_BELOW` (slices of at most
  `steps_between_folds` steps, so that the scale stays far from float32's smallest numbers and the
  stored rows far from its largest), and at the end of each `train_epoch`, so that the tables hold the
  parameters whenever anything else reads them. The result equals shrinking every row at every step up
  to float32 rounding. A learning rate times weight decay of 1 or more (every row multiplied by zero or
  less at each step) is refused.

Two ways to update a side's rows (users or items), chosen per call by the sizes (`whole_table`), with the
same results up to float32 rounding:
- row-wise (tables with more rows than `WHOLE_TABLE_ROWS` times the batch): the engine gathers the batch's
  rows of the side's tables and of their state (`gather_rows`, outside XLA: see `model.ncf.keras_engine`),
  `update_rows` computes their new values (compiled with the rest of the step) and `scatter_rows` writes
  them back. Rows are grouped without sorting: each side has a scratch vector with one int32 per table
  row; a step scatters each example's position in the batch into its row's entry (when several examples
  share a row one of them wins, whichever) and gathers the entries back, so each example knows the
  representative example of its row; the per-row sums are segment sums over the representatives, and every
  example gets its row's sums back by a gather. The update is computed for every example (b slots, not the
  distinct rows): examples that share a row compute bit-identical new values from identical inputs, so the
  scatter writes the same values to that row whatever the order of the duplicates. A side's tables (GMF
  and MLP embeddings) each have their own optimizer state variables. Cost O(batch).
- whole-table (small tables, e.g. ML-1M's 6,040 users and 3,706 items at
  4,096 examples a batch): the sums are segment sums into table-sized arrays and the update runs over
  every row, masked to the rows the batch touched: contiguous passes with no gathers or scatters of
  state, cheaper than the row-wise way while a table has at most a small
  multiple of the batch's rows. Cost O(rows). Where the two ways cost the same depends on the model
  (scratch A/Bs, step times): NeuMF at 4,096 examples a batch, whole-table 18% quicker with ML-1M's tables
  (1.5 rows per example), the same at 2 rows per example, 27% slower at 3; GMF at 2,048 (NeuMF's
  pretrained GMF tower), whole-table 15% quicker with ML-1M's 6,040 users (2.9 per example), 40% slower at
  4.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf

from model.ncf.config import TrainConfig

FOLD_BELOW = 2.0**-20  # fold the scale into the tables when it falls below this
# A side's tables are updated whole when they have at most this many rows per example of the batch.
WHOLE_TABLE_ROWS = 3
BETA_1, BETA_2, EPSILON = 0.9, 0.999, 1e-7  # Keras' Adam defaults (as `numpy_optimizers.Adam`)


def tf_variable(variable: keras.Variable | tf.Variable) -> tf.Variable:
    """The TensorFlow variable behind a Keras 3 variable (scatter updates need it)."""
    return variable.value if isinstance(variable, keras.Variable) else variable


class _Side:
    """The embedding tables indexed by one side's rows (users or items), their optimizer state and the
    grouping scratch vector."""

    def __init__(self, tables: list, n_slots: int) -> None:
        self.tables = [tf_variable(v) for v in tables]
        self.rows = int(self.tables[0].shape[0])
        # per table, its slots of state (Adam: m, v; SGD with momentum: the velocity), each of its shape
        self.slots = [
            [tf.Variable(tf.zeros_like(table), trainable=False) for _ in range(n_slots)]
            for table in self.tables
        ]
        self.representative = tf.Variable(tf.zeros((self.rows,), tf.int32), trainable=False)


class LazyOptimizer:
    """Adam or SGD over dense variables and embedding tables, lazy on the tables (see the module docstring).

    Args:
        train_config: `optimizer`, `learning_rate`, `momentum` and `weight_decay` are read.
        dense: the dense variables (updated whole).
        sides: "user" / "item" -> the embedding tables looked up by that side's indices (decayed through
            `scale`).
    """

    def __init__(self, train_config: TrainConfig, dense: list, sides: dict[str, list]) -> None:
        self.adam = train_config.optimizer == "adam"
        self.momentum = float(train_config.momentum) if not self.adam else 0.0
        self.weight_decay = float(train_config.weight_decay)
        self.learning_rate = tf.Variable(train_config.learning_rate, dtype=tf.float32, trainable=False)
        self.iterations = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.scale = tf.Variable(1.0, dtype=tf.float32, trainable=False)
        n_slots = 2 if self.adam else (1 if self.momentum else 0)
        self.dense = [tf_variable(v) for v in dense]
        self.dense_slots = [
            [tf.Variable(tf.zeros_like(v), trainable=False) for _ in range(n_slots)] for v in self.dense
        ]
        self.sides = {side: _Side(tables, n_slots) for side, tables in sides.items()}
        self.tables = [table for side in self.sides.values() for table in side.tables]

    def whole_table(self, side: str, batch: int) -> bool:
        """Whether a batch of `batch` examples updates `side`'s tables whole (else row-wise): when the
        tables have at most `WHOLE_TABLE_ROWS` rows per example."""
        return self.sides[side].rows <= WHOLE_TABLE_ROWS * batch

    # --- a step: `begin_step`, then `update_dense` and each side's update (any order) ------------------
    def begin_step(self) -> tf.Tensor:
        """Count the step, shrink `scale` by the decoupled weight decay; returns the new scale."""
        self.iterations.assign_add(1)
        if self.weight_decay:
            self.scale.assign(self.scale * (1.0 - self.learning_rate * self.weight_decay))
        return self.scale.read_value()

    def _adam_coefficient(self) -> tf.Tensor:
        t = tf.cast(self.iterations, tf.float32)
        return self.learning_rate * tf.sqrt(1.0 - BETA_2**t) / (1.0 - BETA_1**t)

    def update_dense(self, grads: list[tf.Tensor]) -> None:
        """Decoupled weight decay, then the update, of every dense variable."""
        lr = self.learning_rate
        alpha = self._adam_coefficient() if self.adam else None
        for var, slots, grad in zip(self.dense, self.dense_slots, grads, strict=True):
            if self.weight_decay:
                var.assign_sub(var * (self.weight_decay * lr))
            if self.adam:
                m, v = slots
                m.assign_add((grad - m) * (1.0 - BETA_1))
                v.assign_add((tf.square(grad) - v) * (1.0 - BETA_2))
                var.assign_sub(m * alpha / (tf.sqrt(v) + EPSILON))
            elif self.momentum:
                (velocity,) = slots
                velocity.assign(velocity * self.momentum - grad * lr)
                var.assign_add(velocity)
            else:
                var.assign_sub(grad * lr)

    def _rows_step(
        self,
        stored: list[tf.Tensor],
        slots: list[list[tf.Tensor]],
        row_sums,
        grads: list[tf.Tensor],
        penalties: list[tf.Tensor] | None,
        scale: tf.Tensor,
    ) -> tuple[list[tf.Tensor], list[list[tf.Tensor]]]:
        """The update of a set of rows (either way): per table, the stored rows and their slots of state
        -> their new values. `row_sums` maps (b, w) per-example values to the sums of each row's."""
        new_params, new_slots = [], []
        alpha = self._adam_coefficient() if self.adam else None
        for k, (params, state, grad) in enumerate(zip(stored, slots, grads, strict=True)):
            total = grad if penalties is None else grad + penalties[k]
            if self.adam:
                squares = tf.square(grad) if penalties is None else tf.square(grad) + tf.square(penalties[k])
                m, v = state
                m += (row_sums(total) - m) * (1.0 - BETA_1)
                v += (row_sums(squares) - v) * (1.0 - BETA_2)
                params -= m * alpha / (tf.sqrt(v) + EPSILON) / scale
                state = [m, v]
            else:
                step = row_sums(total) * self.learning_rate
                if self.momentum:
                    velocity = state[0] * self.momentum - step
                    params += velocity / scale
                    state = [velocity]
                else:
                    params -= step / scale
            new_params.append(params)
            new_slots.append(state)
        return new_params, new_slots

    # row-wise: `gather_rows` (outside XLA), `update_rows`, `scatter_rows` (outside XLA)
    def gather_rows(
        self, side: str, indices: tf.Tensor
    ) -> tuple[list[tf.Tensor], list[list[tf.Tensor]], tf.Tensor]:
        """The state of one side's rows `indices` (b,) int32, for `update_rows`: (per table, each example's
        row as stored (b, width); per table, each example's row of each slot of state (b, width); the
        representative example of each example's row (b,) int32)."""
        s = self.sides[side]
        s.representative.scatter_update(tf.IndexedSlices(tf.range(tf.shape(indices)[0]), indices))
        representative = tf.gather(s.representative, indices)
        stored = [tf.gather(table, indices) for table in s.tables]
        slots = [[tf.gather(slot, indices) for slot in table_slots] for table_slots in s.slots]
        return stored, slots, representative

    def update_rows(
        self,
        stored: list[tf.Tensor],
        slots: list[list[tf.Tensor]],
        representative: tf.Tensor,
        grads: list[tf.Tensor],
        penalties: list[tf.Tensor] | None,
        scale: tf.Tensor,
    ) -> tuple[list[tf.Tensor], list[list[tf.Tensor]]]:
        """The update of one side's batch rows (the rows outside the batch are not touched), as new values
        per example (no variable changes: the caller writes them with `scatter_rows`).

        Args:
            stored, slots, representative: from `gather_rows`.
            grads: per table, (b, width) each example's gradient slice.
            penalties: per table, (b, width) each example's L2-penalty gradient slice (a slice of its own:
                Adam squares it apart from the loss' slice), or None.
            scale: `begin_step`'s new scale (stored row = parameter / scale).

        Returns:
            (per table, the new stored rows (b, width); per table, the new rows of each slot).
        """
        b = tf.shape(representative)[0]

        def row_sums(values: tf.Tensor) -> tf.Tensor:  # each example gets the sum over its row's examples
            return tf.gather(tf.math.unsorted_segment_sum(values, representative, b), representative)

        return self._rows_step(stored, slots, row_sums, grads, penalties, scale)

    def scatter_rows(
        self, side: str, indices: tf.Tensor, stored: list[tf.Tensor], slots: list[list[tf.Tensor]]
    ) -> None:
        """Write `update_rows`' new values of one side's rows `indices` (b,) into the tables and their
        state (examples that share a row carry identical values)."""
        s = self.sides[side]
        for table, rows in zip(s.tables, stored, strict=True):
            table.scatter_update(tf.IndexedSlices(rows, indices))
        for table_slots, rows_slots in zip(s.slots, slots, strict=True):
            for slot, rows in zip(table_slots, rows_slots, strict=True):
                slot.scatter_update(tf.IndexedSlices(rows, indices))

    # whole-table
    def update_whole(
        self,
        side: str,
        indices: tf.Tensor,
        grads: list[tf.Tensor],
        penalties: list[tf.Tensor] | None,
        scale: tf.Tensor,
    ) -> None:
        """The update of one side's tables for a batch on rows `indices` (b,) int32, computed for every row
        and kept for the batch's rows only; `grads`, `penalties` and `scale` as for `update_rows`."""
        s = self.sides[side]
        touched = tf.math.unsorted_segment_max(tf.ones_like(indices), indices, s.rows)[:, None] > 0

        def keep(new: tf.Tensor, old: tf.Tensor) -> tf.Tensor:
            return tf.where(touched, new, old)

        def row_sums(values: tf.Tensor) -> tf.Tensor:
            return tf.math.unsorted_segment_sum(values, indices, s.rows)

        stored = [table.read_value() for table in s.tables]
        slots = [[slot.read_value() for slot in table_slots] for table_slots in s.slots]
        new_params, new_slots = self._rows_step(stored, slots, row_sums, grads, penalties, scale)
        for table, old, new in zip(s.tables, stored, new_params, strict=True):
            table.assign(keep(new, old))
        for table_slots, old_slots, slots_new in zip(s.slots, slots, new_slots, strict=True):
            for slot, old, new in zip(table_slots, old_slots, slots_new, strict=True):
                slot.assign(keep(new, old))

    def steps_between_folds(self) -> int:
        """Steps after which `scale` may have fallen from `FOLD_BELOW` to 2^-80 (far above float32's
        smallest normal number, 1.2e-38): the most steps to take between two `fold(FOLD_BELOW)` calls."""
        shrink = 1.0 - float(self.learning_rate.numpy()) * self.weight_decay
        if shrink <= 0.0:
            raise ValueError("learning_rate * weight_decay must be below 1 (each step multiplies by 1 - it)")
        return 1 << 62 if shrink == 1.0 else max(1, int(60 * math.log(2.0) / -math.log(shrink)))

    def fold(self, below: float = math.inf) -> None:
        """Multiply the scale into the tables (O(tables)) when it is below `below` (any scale but 1 by
        default): afterwards the tables hold the parameters."""
        scale = float(self.scale.numpy())
        if scale != 1.0 and scale < below:
            for var in self.tables:
                var.assign(var * scale)
            self.scale.assign(1.0)

    def set_learning_rate(self, learning_rate: float) -> None:
        self.learning_rate.assign(learning_rate)


__all__ = ["LazyOptimizer", "tf_variable"]
