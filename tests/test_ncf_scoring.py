"""The structured all-items scorer agrees with plain pair scoring, for every model kind."""

import numpy as np
import pytest

from model.ncf.config import NCFConfig
from model.ncf.params import check_params, fuse_pretrained, init_params, param_shapes
from model.ncf.scoring import logits_all_items, logits_pairs, score_all_items, sigmoid


@pytest.mark.parametrize(
    "config",
    [
        NCFConfig(kind="gmf", factors=4),
        NCFConfig(kind="mlp", layers=(8, 4, 2)),
        NCFConfig(kind="mlp", layers=(6,)),
        NCFConfig(kind="neumf", factors=3, layers=(8, 4)),
    ],
)
def test_all_items_matches_pairs(config):
    n_users, n_items = 5, 7
    params = init_params(config, n_users, n_items, seed=1)
    # Larger weights than the 0.01 init so that ReLUs switch and the check means something.
    params = {k: (v * 30).astype(np.float32) for k, v in params.items()}
    users = np.array([0, 3, 4])
    grid = logits_all_items(params, config, users)
    pairs = logits_pairs(params, config, np.repeat(users, n_items), np.tile(np.arange(n_items), 3))
    assert grid.shape == (3, n_items) and grid.dtype == np.float32
    np.testing.assert_allclose(grid, pairs.reshape(3, n_items), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(score_all_items(params, config, users), sigmoid(grid), rtol=1e-6)


def test_param_shapes_follow_the_paper():
    shapes = param_shapes(NCFConfig(kind="neumf", factors=8, layers=(64, 32, 16, 8)), 10, 20)
    assert shapes["gmf/user_embedding"] == (10, 8)
    assert shapes["mlp/item_embedding"] == (20, 32)
    assert shapes["mlp/dense_0/kernel"] == (64, 32)
    assert shapes["mlp/dense_2/kernel"] == (16, 8)
    assert shapes["output/kernel"] == (16, 1)


def test_init_is_seeded_and_gaussian():
    config = NCFConfig()
    a, b = init_params(config, 300, 400, seed=7), init_params(config, 300, 400, seed=7)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert abs(float(a["gmf/item_embedding"].std()) - 0.01) < 0.001


def test_fuse_pretrained_weights_output_layer_by_alpha():
    gmf_cfg, mlp_cfg = NCFConfig(kind="gmf", factors=2), NCFConfig(kind="mlp", layers=(4, 2))
    gmf, mlp = init_params(gmf_cfg, 3, 4, 0), init_params(mlp_cfg, 3, 4, 1)
    gmf["output/bias"][:] = 1.0
    mlp["output/bias"][:] = 3.0
    fused = fuse_pretrained(gmf, mlp, alpha=0.25)
    check_params(fused, NCFConfig(kind="neumf", factors=2, layers=(4, 2)), 3, 4)
    np.testing.assert_allclose(fused["output/kernel"][:2], 0.25 * gmf["output/kernel"])
    np.testing.assert_allclose(fused["output/kernel"][2:], 0.75 * mlp["output/kernel"])
    np.testing.assert_allclose(fused["output/bias"], [0.25 * 1.0 + 0.75 * 3.0])
    np.testing.assert_array_equal(fused["gmf/user_embedding"], gmf["gmf/user_embedding"])
    np.testing.assert_array_equal(fused["mlp/dense_0/kernel"], mlp["mlp/dense_0/kernel"])


def test_sigmoid_is_stable_at_extremes():
    x = np.array([-1000.0, -20.0, 0.0, 20.0, 1000.0], dtype=np.float32)
    y = sigmoid(x)
    assert np.all(np.isfinite(y))
    np.testing.assert_allclose(y[2], 0.5)
    assert y[0] == 0.0 and y[-1] == 1.0
