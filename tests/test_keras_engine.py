"""The Keras engine passes the shared NCF contract, and trains NeuMF well on ML-100K in seconds."""

import json

import numpy as np
import pytest
from scipy.special import expit

from batch.cli import main
from model.ncf import keras_engine
from model.ncf.config import NCFConfig, TrainConfig
from model.ncf.keras_engine import KerasNCF
from model.ncf.params import init_params
from model.ncf.scoring import logits_all_items
from model.registry import build_model
from tests.ncf_contract import NCFModelContract


class TestKerasEngine(NCFModelContract):
    engine = "keras"


def test_registry_builds_keras_models_with_options():
    model = build_model("neumf", engine="keras", config={"factors": 16}, train_config={"epochs": 2})
    assert isinstance(model, KerasNCF)
    assert model.config.kind == "neumf" and model.config.factors == 16 and model.train_config.epochs == 2
    assert build_model("gmf").config.kind == "gmf"


@pytest.mark.parametrize(
    "config",
    [
        NCFConfig(kind="neumf", factors=4, layers=(16, 8, 4)),
        NCFConfig(kind="gmf", factors=4),
        NCFConfig(kind="mlp", layers=(16,)),  # no hidden layer: the item part is one number per item
    ],
    ids=["neumf", "gmf", "mlp-without-hidden-layers"],
)
def test_tiled_all_items_scorer_equals_pair_scores_across_tiles_and_calls(monkeypatch, config):
    # 70 users and 600 items: three tiles of users and of items (the last ones partial), several
    # calls of two user tiles (the last padded) on several threads.
    monkeypatch.setattr(keras_engine, "PAIRS_PER_CALL", 2 * keras_engine.TILE_USERS * 768)
    n_users, n_items = 70, 600
    params = init_params(config, n_users, n_items, seed=3)
    params = {k: (v * 30).astype(np.float32) for k, v in params.items()}
    model = KerasNCF(config, TrainConfig())
    model.build(n_users, n_items, params)
    assert model.users_per_call == 2 * keras_engine.TILE_USERS
    users = np.random.default_rng(0).permutation(n_users)[:67]
    grid = model.score_users(users)
    assert grid.shape == (67, n_items) and grid.dtype == np.float32
    # float64 reference; the large weights leave float32 errors of ~2e-4 (pair scores alike), a misplaced
    # tile errs by far more
    exact = expit(logits_all_items({k: v.astype(np.float64) for k, v in params.items()}, config, users))
    np.testing.assert_allclose(grid, exact, atol=1e-3)
    pairs = model.score(np.repeat(users, n_items), np.tile(np.arange(n_items), users.size))
    assert np.abs(grid - exact).max() <= 2 * np.abs(pairs.reshape(grid.shape) - exact).max() + 1e-6


@pytest.mark.slow
def test_cli_trains_neumf_on_ml100k_far_above_itempop(capsys, ml100k_dir):
    base = ["evaluate", "--data-dir", str(ml100k_dir), "--protocol", "sampled", "--json"]
    assert main([*base, "--model", "itempop"]) == 0
    itempop = json.loads(capsys.readouterr().out)
    flags = ["--model", "neumf", "--epochs", "6", "--patience", "0", "--no-pretrain", "--batch-size", "2048"]
    flags += ["--factors", "8", "--layers", "64,32,16,8", "--num-negatives", "4"]
    assert main([*base, *flags]) == 0
    result = json.loads(capsys.readouterr().out)
    history = result["training"]["history"]
    assert [row["epoch"] for row in history] == list(range(1, 7)) and result["refit"] is True
    best = max(history, key=lambda row: row["val_hr@10"])
    assert result["training"]["best_epoch"] == best["epoch"]
    assert result["validation"]["sampled"]["hr@10"] == pytest.approx(best["val_hr@10"], abs=1e-6)
    assert all(np.isfinite(row["loss"]) for row in history)
    # ItemPop on ML-100K: test HR@10 about 0.40; NeuMF must be far above it.
    assert result["test"]["sampled"]["hr@10"] >= itempop["test"]["sampled"]["hr@10"] + 0.1, (result, itempop)
