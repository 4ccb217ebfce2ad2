"""The Keras engine's embedding updates. Lazy (`model.ncf.keras_optimizer`): a step changes only the rows
of its batch (and, with weight decay, shrinks every row by the same factor), lazy Adam equals a NumPy
reference written out here and the NumPy engine over several steps, whichever of the two update ways
(row-wise or whole-table) runs. Dense (the default): several steps equal Keras' own optimizers driven by
hand. And an epoch goes to TensorFlow in bounded slices, with the same results.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import model.ncf.keras_engine as keras_engine
import model.ncf.keras_optimizer as keras_optimizer
from model.ncf.config import NCFConfig, TrainConfig
from model.ncf.keras_engine import KerasNCF, NCFNetwork
from model.ncf.numpy_engine import NumpyNCF
from model.ncf.params import init_params

N_USERS, N_ITEMS = 30, 25
SMALL = {"factors": 4, "layers": (16, 8, 4)}


def lazy(**overrides) -> TrainConfig:
    """A training configuration with lazy embedding updates."""
    return TrainConfig(embedding_updates="lazy", **overrides)


@pytest.fixture(params=["rowwise", "whole"])
def update_way(request, monkeypatch):
    """Runs a test with each way of updating the tables: row-wise (forced for these tiny tables) or
    whole-table (what tables this small get by default)."""
    if request.param == "rowwise":
        monkeypatch.setattr(keras_optimizer, "WHOLE_TABLE_ROWS", 0)
    return request.param


def _weights(config, seed=0):
    params = init_params(config, N_USERS, N_ITEMS, seed)
    # Embeddings ~N(0, 1), far above the 0.01 init, so that every unit matters and ReLUs are on and off.
    return {k: (v * 100 if k.endswith("embedding") else v).astype(np.float32) for k, v in params.items()}


def _keras(config, train_config, params):
    model = KerasNCF(config, train_config)
    model.build(N_USERS, N_ITEMS, params)
    return model


def _batches(sizes, users_below, items_below, seed=1):
    """Batches whose users are < users_below[k] and items < items_below[k] (rows repeat within a batch)."""
    rng = np.random.default_rng(seed)
    out = []
    for size, top_user, top_item in zip(sizes, users_below, items_below, strict=True):
        users = rng.integers(0, top_user, size).astype(np.int32)
        items = rng.integers(0, top_item, size).astype(np.int32)
        labels = (rng.random(size) < 0.4).astype(np.float32)
        out.append((users, items, labels))
    return out


@pytest.mark.parametrize(
    "overrides",
    [{"optimizer": "adam"}, {"optimizer": "sgd", "momentum": 0.9, "learning_rate": 0.1}],
    ids=["adam", "momentum"],
)
def test_a_step_leaves_the_rows_outside_its_batch_bit_identical(update_way, overrides):
    config = NCFConfig(kind="neumf", **SMALL)
    train_config = lazy(**{"learning_rate": 0.01, "weight_decay": 0.0, **overrides})
    model = _keras(config, train_config, _weights(config))
    first, second = _batches([64, 64], [20, 10], [15, 8])  # the second batch skips users 10..19, items 8..14
    model.train_epoch(*first, batch_size=64)  # rows 0..19 / 0..14 now have non-zero moments
    before = model.get_params()
    model.train_epoch(*second, batch_size=64)
    after = model.get_params()
    for name in before:
        if name.endswith("embedding"):
            skipped = slice(10, None) if "user" in name else slice(8, None)
            np.testing.assert_array_equal(after[name][skipped], before[name][skipped], err_msg=name)
            touched = slice(0, 10) if "user" in name else slice(0, 8)
            assert np.abs(after[name][touched] - before[name][touched]).min(axis=1).max() > 0, name


def test_weight_decay_shrinks_every_row_every_step(update_way):
    """Rows no batch touches shrink by (1 - lr wd) per step, as in the NumPy engine (and Keras' AdamW)."""
    config = NCFConfig(kind="neumf", **SMALL)
    train_config = lazy(learning_rate=0.01, weight_decay=2.0)
    params = _weights(config)
    model = _keras(config, train_config, params)
    users, items, labels = _batches([5 * 32], [20], [15])[0]
    model.train_epoch(users, items, labels, batch_size=32)  # 5 steps
    shrink = (1 - 0.01 * 2.0) ** 5
    after = model.get_params()
    for name in params:
        if name.endswith("embedding"):
            untouched = slice(20, None) if "user" in name else slice(15, None)
            np.testing.assert_allclose(after[name][untouched], params[name][untouched] * shrink, rtol=1e-5)


def _gmf_reference(params, batches, lr, wd, beta_1=0.9, beta_2=0.999, eps=1e-7):
    """Lazy AdamW on GMF written out in NumPy (float64): per step, every parameter shrinks by 1 - lr wd,
    the dense ones take Adam's step, and only the batch's embedding rows take theirs, with the sum of the
    examples' gradients in the first moment and the sum of their squares in the second."""
    p = {k: v.astype(np.float64) for k, v in params.items()}
    m = {k: np.zeros_like(v) for k, v in p.items()}
    v = {k: np.zeros_like(x) for k, x in p.items()}
    for t, (users, items, labels) in enumerate(batches, start=1):
        user, item = p["gmf/user_embedding"][users], p["gmf/item_embedding"][items]
        kernel = p["output/kernel"][:, 0]
        logits = (user * item) @ kernel + p["output/bias"][0]
        d = (1 / (1 + np.exp(-logits)) - labels) / labels.shape[0]  # d loss / d logit
        slices = {
            "gmf/user_embedding": d[:, None] * kernel * item,
            "gmf/item_embedding": d[:, None] * kernel * user,
        }
        dense = {
            "output/kernel": ((user * item) * d[:, None]).sum(0)[:, None],
            "output/bias": d.sum(keepdims=True),
        }
        alpha = lr * np.sqrt(1 - beta_2**t) / (1 - beta_1**t)
        for name in p:
            p[name] *= 1 - lr * wd
        for name, grad in dense.items():
            m[name] += (grad - m[name]) * (1 - beta_1)
            v[name] += (grad**2 - v[name]) * (1 - beta_2)
            p[name] -= alpha * m[name] / (np.sqrt(v[name]) + eps)
        for name, rows in (("gmf/user_embedding", users), ("gmf/item_embedding", items)):
            touched = np.unique(rows)
            grad, squares = np.zeros_like(p[name]), np.zeros_like(p[name])
            np.add.at(grad, rows, slices[name])
            np.add.at(squares, rows, slices[name] ** 2)
            m[name][touched] += (grad[touched] - m[name][touched]) * (1 - beta_1)
            v[name][touched] += (squares[touched] - v[name][touched]) * (1 - beta_2)
            p[name][touched] -= alpha * m[name][touched] / (np.sqrt(v[name][touched]) + eps)
    return p


def test_lazy_adam_matches_a_numpy_reference(update_way):
    config = NCFConfig(kind="gmf", factors=4)
    params = _weights(config)
    lr, wd = 0.05, 0.5
    model = _keras(config, lazy(learning_rate=lr, weight_decay=wd), params)
    # Step 2 misses some of step 1's rows (their moments are non-zero: lazy Adam must leave them), step 3
    # comes back to them; rows repeat within each batch.
    batches = _batches([48, 48, 48], [20, 8, 20], [15, 6, 15], seed=4)
    for batch in batches:
        model.train_epoch(*batch, batch_size=48)
    expected = _gmf_reference(params, batches, lr, wd)
    after = model.get_params()
    for name, value in expected.items():
        assert np.abs(value - params[name]).max() > 1e-2, f"{name} hardly moved: the check would be weak"
        np.testing.assert_allclose(after[name], value, rtol=0, atol=2e-5, err_msg=name)


@pytest.mark.parametrize(
    ("train_overrides", "l2"),
    [
        ({"optimizer": "adam", "learning_rate": 0.01, "weight_decay": 0.5}, 0.0),
        ({"optimizer": "adam", "learning_rate": 0.01, "weight_decay": 0.0}, 0.01),
        ({"optimizer": "sgd", "learning_rate": 0.5, "momentum": 0.9, "weight_decay": 0.1}, 0.0),
        ({"optimizer": "sgd", "learning_rate": 0.5, "weight_decay": 0.0}, 0.0),
        ({"learning_rate": 0.01, "weight_decay": 0.5, "loss": "softmax", "num_negatives": 3}, 0.0),
    ],
    ids=["adamw", "adam-l2", "sgdw-momentum", "sgd", "adamw-softmax"],
)
def test_several_steps_match_the_numpy_engine(update_way, train_overrides, l2):
    """Three steps whose batches drop rows and take them back: the NumPy engine's lazy updates are the
    reference (same formulas, so equal up to float32 rounding)."""
    config = NCFConfig(kind="neumf", l2=l2, **SMALL)
    params = _weights(config)
    train_config = lazy(**train_overrides)
    keras_model = _keras(config, train_config, params)
    numpy_model = NumpyNCF(config, train_config)
    numpy_model.build(N_USERS, N_ITEMS, params)
    for batch in _batches([64, 64, 64], [20, 10, 20], [15, 7, 15]):
        keras_loss = keras_model.train_epoch(*batch, batch_size=64)
        numpy_loss = numpy_model.train_epoch(*batch, batch_size=64)
        assert abs(keras_loss - numpy_loss) < 1e-4
    after_keras, after_numpy = keras_model.get_params(), numpy_model.get_params()
    for name in params:
        np.testing.assert_allclose(after_keras[name], after_numpy[name], rtol=0, atol=2e-4, err_msg=name)


def _keras_optimizer_reference(config, train_config, params, batches):
    """The same steps with Keras' own optimizer (dense updates of the tables) on an `NCFNetwork`."""
    network = NCFNetwork(config, N_USERS, N_ITEMS, seed=0)
    network((tf.zeros((1,), tf.int32), tf.zeros((1,), tf.int32)))
    variables = network.named_variables()
    for name, var in variables.items():
        var.assign(params[name])
    lr, wd = train_config.learning_rate, train_config.weight_decay or None
    if train_config.optimizer == "adam":
        optimizer = keras.optimizers.Adam(learning_rate=lr, weight_decay=wd)
    else:
        optimizer = keras.optimizers.SGD(learning_rate=lr, momentum=train_config.momentum, weight_decay=wd)
    trainable = list(variables.values())
    for users, items, labels in batches:
        with tf.GradientTape() as tape:
            logits = network((tf.constant(users), tf.constant(items)), training=True)
            loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits))
        optimizer.apply_gradients(zip(tape.gradient(loss, trainable), trainable, strict=True))
    return {name: var.numpy() for name, var in variables.items()}


@pytest.mark.parametrize(
    "train_overrides",
    [
        {"optimizer": "adam", "learning_rate": 0.01, "weight_decay": 0.5},
        {"optimizer": "sgd", "learning_rate": 0.5, "momentum": 0.9, "weight_decay": 0.1},
    ],
    ids=["adamw", "sgdw-momentum"],
)
def test_dense_updates_match_keras_own_optimizers(train_overrides):
    """The default (dense) updates: rows outside a batch keep moving with their moments, as with Keras'
    Adam / SGD on an Embedding; three steps whose batches drop rows and take them back."""
    config = NCFConfig(kind="neumf", **SMALL)
    params = _weights(config)
    train_config = TrainConfig(**train_overrides)
    model = _keras(config, train_config, params)
    batches = _batches([64, 64, 64], [20, 10, 20], [15, 7, 15])
    for batch in batches:
        model.train_epoch(*batch, batch_size=64)
    expected = _keras_optimizer_reference(config, train_config, params, batches)
    after = model.get_params()
    for name, value in expected.items():
        np.testing.assert_allclose(after[name], value, rtol=0, atol=2e-4, err_msg=name)
    # Lazy updates part from them: users 10..19 sat out step 2 with non-zero moments.
    lazy_model = _keras(config, lazy(**train_overrides), params)
    for batch in batches:
        lazy_model.train_epoch(*batch, batch_size=64)
    lazy_rows = lazy_model.get_params()["gmf/user_embedding"][10:20]
    assert np.abs(lazy_rows - expected["gmf/user_embedding"][10:20]).max() > 1e-3


def test_large_decay_folds_the_scale_before_it_underflows(update_way):
    """lr wd = 0.5 halves every row per step: 100 steps take the untouched rows to 2^-100 of their start,
    through scales far below float32's range had the scale not been folded into the tables on the way."""
    config = NCFConfig(kind="gmf", factors=4)
    params = _weights(config)
    model = _keras(config, lazy(optimizer="sgd", learning_rate=0.5, weight_decay=1.0), params)
    users, items, labels = _batches([100 * 8], [20], [15])[0]
    model.train_epoch(users, items, labels, batch_size=8)
    after = model.get_params()
    expected = params["gmf/user_embedding"][20:] * 0.5**100
    np.testing.assert_allclose(after["gmf/user_embedding"][20:], expected, rtol=1e-5)
    assert all(np.isfinite(value).all() for value in after.values())
    with pytest.raises(ValueError, match="below 1"):
        _keras(config, lazy(learning_rate=0.5, weight_decay=2.0), params).train_epoch(
            users, items, labels, batch_size=8
        )


@pytest.mark.parametrize("updates", ["dense", "lazy"])
def test_an_epoch_goes_to_tensorflow_in_bounded_slices(monkeypatch, updates):
    """Slicing changes nothing: with dense updates (Keras' optimizer) the parameters are bit-identical to
    one call for the whole epoch; with lazy ones equal up to float32 rounding (the scale folds)."""
    config = NCFConfig(kind="neumf", **SMALL)
    train_config = TrainConfig(learning_rate=0.01, embedding_updates=updates)
    users, items, labels = _batches([10 * 16 + 5], [N_USERS], [N_ITEMS])[0]  # 10 full batches and 5 more
    whole = _keras(config, train_config, _weights(config))
    whole_loss = whole.train_epoch(users, items, labels, batch_size=16)
    monkeypatch.setattr(keras_engine, "SLICE_BATCHES", 3)
    sliced = _keras(config, train_config, _weights(config))
    calls = []
    original = sliced._train_slice
    monkeypatch.setattr(sliced, "_train_slice", lambda *a: calls.append((a[0].shape, a[3])) or original(*a))
    sliced_loss = sliced.train_epoch(users, items, labels, batch_size=16)
    assert calls == [((3, 16), 3), ((3, 16), 3), ((3, 16), 3), ((3, 16), 1), ((1, 5), 1)]
    assert sliced_loss == pytest.approx(whole_loss, abs=1e-6)
    atol = 0.0 if updates == "dense" else 1e-6
    for name, value in whole.get_params().items():
        np.testing.assert_allclose(sliced.get_params()[name], value, rtol=0, atol=atol, err_msg=name)
