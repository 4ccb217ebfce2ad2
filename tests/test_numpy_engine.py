"""The NumPy engine passes the shared NCF contract unchanged, and is selectable through the registry."""

from model.ncf.numpy_engine import NumpyNCF
from model.registry import build_model
from tests.ncf_contract import NCFModelContract


class TestNumpyEngine(NCFModelContract):
    engine = "numpy"


def test_registry_builds_numpy_models_with_options():
    model = build_model("neumf", engine="numpy", config={"factors": 16}, train_config={"epochs": 2})
    assert isinstance(model, NumpyNCF) and model.engine == "numpy"
    assert model.config.factors == 16 and model.train_config.epochs == 2
