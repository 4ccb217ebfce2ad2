"""The NumPy engine passes the shared NCF contract unchanged, is selectable through the registry, and
pretrained NeuMF learns on ML-100K."""

import os

import numpy as np
import pytest

from model.ncf.numpy_engine import NumpyNCF
from model.registry import build_model
from tests.ncf_contract import NCFModelContract


class TestNumpyEngine(NCFModelContract):
    engine = "numpy"


def test_registry_builds_numpy_models_with_options():
    model = build_model("neumf", engine="numpy", config={"factors": 16}, train_config={"epochs": 2})
    assert isinstance(model, NumpyNCF) and model.engine == "numpy"
    assert model.config.factors == 16 and model.train_config.epochs == 2


@pytest.mark.slow
def test_pretrained_numpy_neumf_on_ml100k_beats_itempop_by_far():
    data_dir = os.environ.get("NCF_DATA_DIR_100K")
    if not data_dir:
        pytest.skip("NCF_DATA_DIR_100K not set")
    from model.baselines import ItemPop
    from model.data import DataLoader, leave_one_out
    from model.evaluation import Evaluator

    split = leave_one_out(DataLoader(data_dir).load(), seed=0)
    evaluator = Evaluator(split, protocols=("sampled",))
    itempop = evaluator.evaluate(ItemPop().fit(split.train), "test")["sampled"]["hr@10"]
    options = {"epochs": 3, "patience": 0, "pretrain": True, "batch_size": 2048, "learning_rate": 0.005}
    model = build_model("neumf", engine="numpy", train_config=options).fit(split.train, split.validation)
    assert set(model.pretrained_) == {"gmf", "mlp"} and len(model.pretrained_["mlp"].history_) == 3
    result = evaluator.evaluate(model, "test")["sampled"]
    assert len(model.history_) == 3 and all(np.isfinite(row["loss"]) for row in model.history_)
    assert result["hr@10"] >= itempop + 0.1, (result, itempop)
