"""NCF models (GMF, MLP, NeuMF): engine-neutral config, parameters, scoring and the `NCFModel` base."""

from model.ncf.base import NCFModel
from model.ncf.config import NCFConfig, TrainConfig

__all__ = ["NCFConfig", "NCFModel", "TrainConfig"]
