"""The Keras engine passes the shared NCF contract, and trains NeuMF well on ML-100K in seconds."""

import json

import numpy as np
import pytest

from batch.cli import main
from model.ncf.keras_engine import KerasNCF
from model.registry import build_model
from tests.ncf_contract import NCFModelContract


class TestKerasEngine(NCFModelContract):
    engine = "keras"


def test_registry_builds_keras_models_with_options():
    model = build_model("neumf", engine="keras", config={"factors": 16}, train_config={"epochs": 2})
    assert isinstance(model, KerasNCF)
    assert model.config.kind == "neumf" and model.config.factors == 16 and model.train_config.epochs == 2
    assert build_model("gmf").config.kind == "gmf"


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
