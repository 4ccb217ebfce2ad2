"""Keras and NumPy engines agree: weights copy both ways, forward scores match to 1e-5, and one optimizer
step (SGD, SGD with momentum, Adam) from identical weights gives the same updated weights to 1e-4.

How Keras 3 (TensorFlow backend) updates embeddings, and why one step is a fair comparison:
- the gradient of an Embedding table is a `tf.IndexedSlices` (one slice per example). SGD without momentum
  scatters it into the touched rows only. SGD with momentum and Adam turn it into a dense tensor (zeros
  for rows outside the batch) and update *every* row: a row absent from the batch still moves when its
  momentum is non-zero. The NumPy engine updates only the rows in the batch (lazy updates). On the first
  step all moments are zero, so rows outside the batch stay unchanged in both engines: equal by design.
  `test_keras_moves_absent_rows_later_numpy_does_not` pins down where the two then part.
- Adam's second moment for an embedding row accumulates the per-example squared gradients (Keras squares
  the IndexedSlices before summing duplicate rows); the NumPy engine does the same, and the batches here
  repeat users and items so that this path is exercised.
"""

import numpy as np
import pytest

from model.ncf.base import NCFModel
from model.ncf.config import NCFConfig, TrainConfig
from model.ncf.keras_engine import KerasNCF
from model.ncf.numpy_engine import NumpyNCF
from model.ncf.params import init_params

N_USERS, N_ITEMS = 30, 25
SMALL = {"factors": 4, "layers": (16, 8, 4)}


def _weights(config, seed=0):
    params = init_params(config, N_USERS, N_ITEMS, seed)
    # Embeddings ~N(0, 1), far above the 0.01 init, so that every unit matters and ReLUs are on and off.
    return {k: (v * 100 if k.endswith("embedding") else v).astype(np.float32) for k, v in params.items()}


def _batch(size=64, seed=1):
    rng = np.random.default_rng(seed)
    # Users 0..19 and items 0..14 only: repeated rows, and rows that the batch never touches.
    users = rng.integers(0, 20, size).astype(np.int32)
    items = rng.integers(0, 15, size).astype(np.int32)
    labels = (rng.random(size) < 0.4).astype(np.float32)
    return users, items, labels


def _log_loss(logits, labels):
    return float(np.mean(np.maximum(logits, 0) - logits * labels + np.log1p(np.exp(-np.abs(logits)))))


def _pair(config, train_config, params):
    keras_model = KerasNCF(config, train_config)
    keras_model.build(N_USERS, N_ITEMS, params)
    numpy_model = NumpyNCF(config, train_config)
    numpy_model.build(N_USERS, N_ITEMS, params)
    return keras_model, numpy_model


@pytest.mark.parametrize("kind", ["gmf", "mlp", "neumf"])
def test_weights_copied_from_keras_give_the_same_scores(kind):
    config = NCFConfig(kind=kind, **SMALL)
    keras_model = KerasNCF(config, TrainConfig())
    keras_model.build(N_USERS, N_ITEMS, _weights(config))
    numpy_model = NumpyNCF(config, TrainConfig())
    numpy_model.build(N_USERS, N_ITEMS, _weights(config, seed=9))  # different, then overwritten
    numpy_model.set_params(keras_model.get_params())
    users, items, _ = _batch(200)
    keras_scores, numpy_scores = keras_model.score(users, items), numpy_model.score(users, items)
    assert keras_scores.std() > 0.05  # scores spread out: the comparison is not between constants
    np.testing.assert_allclose(numpy_scores, keras_scores, rtol=0, atol=1e-5)
    # And back: NumPy weights into Keras.
    changed = {k: (v * 0.7).astype(np.float32) for k, v in numpy_model.get_params().items()}
    numpy_model.set_params(changed)
    keras_model.set_params(numpy_model.get_params())
    np.testing.assert_allclose(keras_model.score(users, items), numpy_model.score(users, items), atol=1e-5)


# NeuMF holds both the GMF and the MLP parts; every case compiles Keras functions, so they are few.
@pytest.mark.parametrize(
    ("kind", "train_overrides", "l2"),
    [
        ("neumf", {"optimizer": "sgd", "learning_rate": 0.5, "weight_decay": 0.0}, 0.0),
        ("neumf", {"optimizer": "sgd", "learning_rate": 0.5, "momentum": 0.9, "weight_decay": 0.0}, 0.0),
        ("neumf", {"optimizer": "adam", "learning_rate": 0.01, "weight_decay": 0.0}, 0.0),
        ("neumf", {"optimizer": "adam", "learning_rate": 0.01, "weight_decay": 0.0}, 0.01),
        ("neumf", {"optimizer": "adam", "learning_rate": 0.01, "weight_decay": 2.0}, 0.0),
        ("neumf", {"optimizer": "sgd", "learning_rate": 0.5, "momentum": 0.9, "weight_decay": 0.1}, 0.0),
        ("neumf", {"learning_rate": 0.01, "weight_decay": 2.0, "loss": "softmax", "num_negatives": 3}, 0.0),
    ],
    ids=[
        "neumf-sgd",
        "neumf-momentum",
        "neumf-adam",
        "neumf-adam-l2",
        "neumf-adamw",
        "neumf-sgdw",
        "neumf-softmax",
    ],
)
def test_one_optimizer_step_gives_the_same_weights(kind, train_overrides, l2):
    config = NCFConfig(kind=kind, l2=l2, **SMALL)
    params = _weights(config)
    train_config = TrainConfig(**train_overrides)
    keras_model, numpy_model = _pair(config, train_config, params)
    users, items, labels = _batch()
    logits = np.asarray(keras_model.network((users, items)), dtype=np.float64)
    keras_loss = keras_model.train_epoch(users, items, labels, batch_size=64)  # one batch: one step
    numpy_loss = numpy_model.train_epoch(users, items, labels, batch_size=64)
    assert abs(keras_loss - numpy_loss) < 1e-5
    if train_config.loss == "softmax":  # the loss the engines report is the groups' softmax loss
        groups = logits.reshape(-1, train_config.group_size())
        top = groups.max(axis=1)
        expected = np.mean(np.log(np.exp(groups - top[:, None]).sum(axis=1)) + top - groups[:, 0])
        assert abs(keras_loss - expected) < 1e-4 < abs(keras_loss - _log_loss(logits, labels))
    after_keras, after_numpy = keras_model.get_params(), numpy_model.get_params()
    for name, before in params.items():
        moved = np.abs(after_keras[name] - before).max()
        assert moved > 1e-3 or name.endswith("bias"), f"{name} hardly moved: the check would be weak"
        np.testing.assert_allclose(after_numpy[name], after_keras[name], rtol=0, atol=1e-4, err_msg=name)
    # Rows outside the batch: on the first step only the decoupled weight decay (whole tables, both
    # engines) changes them.
    shrink = np.float32(1 - train_config.learning_rate * train_config.weight_decay)
    for engine_params in (after_keras, after_numpy):
        for name in engine_params:
            if name.endswith("user_embedding"):
                np.testing.assert_allclose(engine_params[name][20:], params[name][20:] * shrink, rtol=1e-6)
            if name.endswith("item_embedding"):
                np.testing.assert_allclose(engine_params[name][15:], params[name][15:] * shrink, rtol=1e-6)
    if train_config.weight_decay:
        assert shrink < 0.99  # the decay is large enough for the checks above to see it


def test_keras_moves_absent_rows_later_numpy_does_not():
    """Step 1 touches user 0, step 2 does not: Keras' dense Adam still moves user 0's row on step 2 (its
    momentum is non-zero), the NumPy engine's lazy Adam leaves it. Documents the one intended difference."""
    config = NCFConfig(kind="gmf", factors=4)
    train_config = TrainConfig(learning_rate=0.01, weight_decay=0.0)  # decay would move absent rows too
    keras_model, numpy_model = _pair(config, train_config, _weights(config))
    first = (np.array([0, 1], np.int32), np.array([0, 1], np.int32), np.array([1, 0], np.float32))
    second = (np.array([2, 3], np.int32), np.array([2, 3], np.int32), np.array([1, 0], np.float32))
    rows = {}
    for model in (keras_model, numpy_model):
        model.train_epoch(*first, batch_size=2)
        after_first = model.get_params()["gmf/user_embedding"][0].copy()
        model.train_epoch(*second, batch_size=2)
        rows[model.engine] = (after_first, model.get_params()["gmf/user_embedding"][0])
    np.testing.assert_allclose(rows["numpy"][0], rows["keras"][0], atol=1e-4)  # same after step 1
    assert np.abs(rows["keras"][1] - rows["keras"][0]).max() > 1e-3  # Keras: moved while absent
    np.testing.assert_array_equal(rows["numpy"][1], rows["numpy"][0])  # NumPy: lazy, unchanged


def test_a_model_saved_by_numpy_loads_into_keras(tmp_path):
    config = NCFConfig(kind="neumf", **SMALL)
    numpy_model = NumpyNCF(config, TrainConfig())
    numpy_model.build(N_USERS, N_ITEMS, _weights(config))
    numpy_model.save(tmp_path / "m")
    loaded = NCFModel.load(tmp_path / "m", engine="keras")
    assert isinstance(loaded, KerasNCF)
    users, items, _ = _batch(200)
    np.testing.assert_allclose(loaded.score(users, items), numpy_model.score(users, items), atol=1e-5)
