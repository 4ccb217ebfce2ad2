"""The NumPy engine's hand-written gradients agree with central finite differences (float64, tiny models),
for every parameter of GMF, MLP and NeuMF, with and without L2 and dropout, under the log loss and the
softmax loss."""

import numpy as np
import pytest

from model.ncf.config import NCFConfig, TrainConfig
from model.ncf.numpy_engine import NumpyNCF
from model.ncf.numpy_network import log_loss_with_logits, softmax_loss_with_logits
from model.ncf.numpy_sparse import row_selector, sum_rows
from model.ncf.params import init_params


class Float64NCF(NumpyNCF):
    dtype = np.float64


N_USERS, N_ITEMS = 5, 6


def _batch():
    rng = np.random.default_rng(3)
    users = rng.integers(0, N_USERS, size=12)  # repeated rows: the row sums are checked too
    items = rng.integers(0, N_ITEMS, size=12)
    labels = (rng.random(12) < 0.5).astype(np.float64)
    return users, items, labels


def _model(config, train_config=None):
    params = init_params(config, N_USERS, N_ITEMS, seed=2)
    # Weights far larger than the 0.01 init, so that every unit matters and ReLUs are on and off.
    params = {k: v.astype(np.float64) * (40.0 if k.endswith("embedding") else 1.5) for k, v in params.items()}
    # Non-zero biases: with zero biases an example whose hidden inputs are all zero sits exactly on a ReLU
    # kink, where central differences are meaningless.
    rng = np.random.default_rng(4)
    for name in params:
        if name.endswith("bias"):
            params[name] = rng.uniform(0.1, 0.5, size=params[name].shape)
    model = Float64NCF(config, train_config or TrainConfig(seed=5))
    model.build(N_USERS, N_ITEMS, params)
    return model


def _dense_gradients(model, users, items, labels):
    """Analytic gradients of every parameter by engine-neutral name (embedding gradients made dense)."""
    rng_state = model._dropout_rng.bit_generator.state
    _, indices, d_rows, dense_grads = model.gradients(users, items, labels)
    rows, row_grads = sum_rows(indices, d_rows)
    model._dropout_rng.bit_generator.state = rng_state
    table = np.zeros((N_USERS + N_ITEMS, d_rows.shape[1]), dtype=d_rows.dtype)
    table[rows] = row_grads
    grads = dict(dense_grads)
    f = model.config.factors if model.config.kind != "mlp" else 0
    mlp = d_rows.shape[1] - f
    # user slices are [GMF | MLP], item slices [MLP | GMF] (the engine's table layout)
    for side, gmf_part, mlp_part in (
        ("user", table[:N_USERS, :f], table[:N_USERS, f:]),
        ("item", table[N_USERS:, mlp:], table[N_USERS:, :mlp]),
    ):
        if model.config.kind != "mlp":
            grads[f"gmf/{side}_embedding"] = gmf_part
        if model.config.kind != "gmf":
            grads[f"mlp/{side}_embedding"] = mlp_part
    return grads


SOFTMAX = TrainConfig(seed=5, loss="softmax", num_negatives=3)  # the batch of 12: three groups of 4


@pytest.mark.parametrize(
    ("config", "train_config"),
    [
        (NCFConfig(kind="gmf", factors=3), None),
        (NCFConfig(kind="mlp", layers=(6, 4, 3)), None),
        (NCFConfig(kind="mlp", layers=(4,)), None),
        (NCFConfig(kind="neumf", factors=2, layers=(6, 4, 2)), None),
        (NCFConfig(kind="neumf", factors=2, layers=(4, 3), l2=0.01), None),
        (NCFConfig(kind="neumf", factors=2, layers=(6, 5, 4), dropout=0.3), None),
        (NCFConfig(kind="neumf", factors=2, layers=(6, 4, 2)), SOFTMAX),
        (NCFConfig(kind="neumf", factors=2, layers=(4, 3), l2=0.01), SOFTMAX),
    ],
    ids=["gmf", "mlp", "mlp-no-hidden", "neumf", "neumf-l2", "neumf-dropout", "softmax", "softmax-l2"],
)
def test_gradients_match_central_differences(config, train_config):
    model = _model(config, train_config)
    users, items, labels = _batch()
    analytic = _dense_gradients(model, users, items, labels)
    views = model._views()
    assert set(analytic) == set(views)
    eps = 1e-6
    rng_state = model._dropout_rng.bit_generator.state
    for name, view in views.items():
        numeric = np.zeros(view.shape)
        for index in np.ndindex(view.shape):
            original = view[index]
            losses = []
            for shift in (eps, -eps):
                view[index] = original + shift
                model._dropout_rng.bit_generator.state = rng_state  # same dropout mask every evaluation
                losses.append(model.gradients(users, items, labels)[0])
            view[index] = original
            numeric[index] = (losses[0] - losses[1]) / (2 * eps)
        if name == "output/bias" and model.train_config.loss == "softmax":
            assert np.abs(numeric).max() < 1e-8  # a shift of a group's logits leaves its softmax
        else:
            assert np.abs(numeric).max() > 0, f"{name}: no gradient at all, the check would be vacuous"
        np.testing.assert_allclose(analytic[name], numeric, rtol=1e-5, atol=1e-8, err_msg=name)


def test_log_loss_is_stable_for_huge_logits():
    logits = np.array([-1000.0, -30.0, 0.0, 30.0, 1000.0], dtype=np.float32)
    labels = np.array([1.0, 0.0, 1.0, 1.0, 0.0], dtype=np.float32)
    loss, grad = log_loss_with_logits(logits, labels)
    expected = np.mean([1000.0, np.log1p(np.exp(-30.0)), np.log(2.0), np.log1p(np.exp(-30.0)), 1000.0])
    assert np.isfinite(loss) and abs(loss - expected) < 1e-3
    np.testing.assert_allclose(grad * 5, [-1.0, 0.0, -0.5, 0.0, 1.0], atol=1e-6)
    assert grad.dtype == np.float32


def test_softmax_loss_by_hand_stable_and_its_parts_add_up():
    logits = np.array([2.0, 0.0, 1.0, -1000.0, 1000.0, 0.0], dtype=np.float32)  # two groups of 3
    loss, grad = softmax_loss_with_logits(logits, 3, 2)
    first = np.log(np.exp(2.0) + 1 + np.exp(1.0)) - 2.0
    assert np.isfinite(loss) and abs(loss - (first + 2000.0) / 2) < 1e-3
    share = np.exp([2.0, 0.0, 1.0]) / np.exp([2.0, 0.0, 1.0]).sum()
    np.testing.assert_allclose(grad[:3], (share - [1, 0, 0]) / 2, rtol=1e-5)
    np.testing.assert_allclose(grad[3:], [-0.5, 0.5, 0.0], atol=1e-6)
    assert grad.dtype == np.float32
    parts = softmax_loss_with_logits(logits[:3], 3, 2), softmax_loss_with_logits(logits[3:], 3, 2)
    assert abs(parts[0][0] + parts[1][0] - loss) < 1e-3
    np.testing.assert_allclose(np.concatenate([parts[0][1], parts[1][1]]), grad, rtol=1e-6)
    # One negative per positive: BPR's pairwise loss, -log sigmoid(x_pos - x_neg).
    pair = np.array([0.7, -0.4], dtype=np.float64)
    assert abs(softmax_loss_with_logits(pair, 2, 1)[0] - np.log1p(np.exp(-1.1))) < 1e-12


def test_sum_rows_matches_add_at():
    rng = np.random.default_rng(0)
    indices = rng.integers(0, 50, size=400)
    grads = rng.normal(size=(400, 7)).astype(np.float32)
    rows, summed = sum_rows(indices, grads)
    expected = np.zeros((50, 7), dtype=np.float32)
    np.add.at(expected, indices, grads)
    np.testing.assert_array_equal(rows, np.unique(indices))
    np.testing.assert_allclose(summed, expected[rows], rtol=1e-5, atol=1e-6)
    assert not np.any(np.delete(expected, rows, axis=0))


def test_row_selector_sums_several_arrays_like_add_at():
    from model.ncf.numpy_sparse import row_selector

    rng = np.random.default_rng(1)
    indices = rng.integers(0, 30, size=300)
    grads = rng.normal(size=(300, 5)).astype(np.float32)
    rows, selector = row_selector(indices)
    np.testing.assert_array_equal(rows, np.unique(indices))
    for values in (grads, np.square(grads)):
        expected = np.zeros((30, 5), dtype=np.float32)
        np.add.at(expected, indices, values)
        summed = selector @ values
        assert summed.dtype == np.float32
        np.testing.assert_allclose(summed, expected[rows], rtol=1e-5, atol=1e-6)


def test_log_loss_of_the_parts_of_a_batch_adds_up_to_the_whole():
    rng = np.random.default_rng(2)
    logits = rng.normal(scale=3, size=10).astype(np.float32)
    labels = (rng.random(10) < 0.5).astype(np.float32)
    loss, grad = log_loss_with_logits(logits, labels)
    first, second = (
        log_loss_with_logits(logits[:4], labels[:4], 10),
        log_loss_with_logits(logits[4:], labels[4:], 10),
    )
    assert abs(first[0] + second[0] - loss) < 1e-6
    np.testing.assert_allclose(np.concatenate([first[1], second[1]]), grad, rtol=1e-6)


def test_row_selector_sums_the_same_without_scipys_compiled_kernel(monkeypatch):
    """The engine calls scipy's private CSR kernel directly; the public `csr_matrix` product it falls back
    on (if the private module goes away) gives the same sums, in float32 and float64."""
    import model.ncf.numpy_sparse as numpy_sparse

    rng = np.random.default_rng(5)
    indices = rng.integers(0, 40, size=500)
    for dtype in (np.float32, np.float64):
        grads = rng.normal(size=(500, 6)).astype(dtype)
        _, direct = sum_rows(indices, grads)
        with monkeypatch.context() as patch:
            patch.setattr(numpy_sparse, "_csr_matvecs", None)
            _, public = sum_rows(indices, grads)
        assert direct.dtype == public.dtype == dtype
        np.testing.assert_allclose(direct, public, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("batch", [1, 7, 12, 2048])
@pytest.mark.parametrize("width", [1, 8, 33])
def test_bias_adds_outer_products_and_relu_equal_their_plain_forms(batch, width):
    """`add_row` / `outer` regroup (B, w) blocks into longer rows when w divides nicely (and fall back
    on the plain broadcast when not), `relu` takes an array of zeros: bit-for-bit the plain results."""
    from model.ncf.numpy_kernels import add_row, outer, relu

    rng = np.random.default_rng(batch * 100 + width)
    h = rng.normal(size=(batch, width)).astype(np.float32)
    row, column = rng.normal(size=width).astype(np.float32), rng.normal(size=batch).astype(np.float32)
    expected = h + row
    add_row(h, row)
    np.testing.assert_array_equal(h, expected)
    product = outer(column, row)
    assert product.shape == (batch, width) and product.flags.c_contiguous
    np.testing.assert_array_equal(product, column[:, None] * row)
    expected = np.maximum(h, 0)
    for zeros in (None, np.zeros(batch * width + 3, np.float32)):  # allocated, or the given zeros
        rectified = h.copy()
        relu(rectified, zeros)
        np.testing.assert_array_equal(rectified, expected)


def test_adam_with_scaled_moments_follows_the_keras_formulas_over_many_steps():
    """The engine's Adam keeps m / (1 - b1) and v / (1 - b2); its parameters must still follow Keras'
    formulas (m += (g - m)(1 - b1), v += (g^2 - v)(1 - b2), p -= lr_t m / (sqrt(v) + eps)), dense and
    row-wise, computed here in float64, to float32 rounding over 50 steps."""
    from model.ncf.numpy_optimizers import Adam

    rng = np.random.default_rng(6)
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-7
    start = rng.normal(size=(6, 4))
    dense, optimizer = start.astype(np.float32), Adam(lr)
    block = np.zeros((3, *start.shape), np.float32)  # the table's rows, then M and V
    block[0] = start
    reference, m, v = start.copy(), np.zeros_like(start), np.zeros_like(start)
    # the gradient of each row in two slices (per-example gradients), half each
    rows, selector = row_selector(np.tile(np.arange(6), 2))
    for t in range(1, 51):
        grad = rng.normal(scale=0.1, size=start.shape)
        m += (grad - m) * (1 - b1)
        v += (grad**2 - v) * (1 - b2)
        reference -= lr * np.sqrt(1 - b2**t) / (1 - b1**t) * m / (np.sqrt(v) + eps)
        optimizer.step()
        optimizer.update("dense", dense, grad.astype(np.float32))
        half = (grad / 2).astype(np.float32)
        # Adam's second moment sums the squared slices it is given: here two of g^2 / 2, so that it sums g^2
        optimizer.update_rows(block, rows, selector, np.tile(half, (2, 1)), np.tile(2 * half**2, (2, 1)))
    assert np.abs(reference - start).max() > 0.1  # the parameters moved: the comparison is not vacuous
    np.testing.assert_allclose(dense, reference, rtol=0, atol=1e-5)
    np.testing.assert_allclose(block[0], reference, rtol=0, atol=1e-5)
