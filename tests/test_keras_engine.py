"""The Keras engine passes the shared NCF contract, and trains NeuMF well on ML-100K in seconds."""

import os

import numpy as np
import pytest

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
def test_neumf_on_ml100k_beats_itempop_by_far():
    data_dir = os.environ.get("NCF_DATA_DIR_100K")
    if not data_dir:
        pytest.skip("NCF_DATA_DIR_100K not set")
    from model.baselines import ItemPop
    from model.data import DataLoader, leave_one_out
    from model.evaluation import Evaluator

    split = leave_one_out(DataLoader(data_dir).load(), seed=0)
    evaluator = Evaluator(split, protocols=("sampled",))
    itempop = evaluator.evaluate(ItemPop().fit(split.train), "test")["sampled"]["hr@10"]
    model = build_model("neumf", train_config={"epochs": 8, "patience": 0}).fit(split.train, split.validation)
    result = evaluator.evaluate(model, "test")["sampled"]
    assert 1 <= model.best_epoch_ <= 8 and len(model.history_) == 8
    assert all(np.isfinite(row["loss"]) for row in model.history_)
    assert result["hr@10"] >= itempop + 0.1, (result, itempop)
