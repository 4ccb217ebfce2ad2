"""`NCFModel`: the abstract base every NCF engine (Keras, NumPy) implements.

The split of work:
- the constructor stores hyperparameters only (`NCFConfig`, `TrainConfig`);
- an engine implements `build`, `get_params`, `set_params`, `train_epoch` and pair scoring;
- `fit` hands the epoch loop to `NeuMFTrainer`, which knows nothing about NeuMF;
- `save` / `load` use one engine-neutral layout: `config.json` + `weights.npz` (+ optional id maps), never
  pickle, so a model saved by one engine loads into the other.
"""

from __future__ import annotations

import json
from abc import abstractmethod
from collections.abc import Collection
from pathlib import Path
from typing import Self

import numpy as np

from model.base import Recommender
from model.data.interactions import Interactions
from model.data.split import HeldOut
from model.ncf.config import TOWERS, NCFConfig, TrainConfig
from model.ncf.params import Params, check_params
from model.ncf.scoring import score_all_items

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "weights.npz"
ID_MAPS_FILE = "id_maps.npz"


class NCFModel(Recommender):
    """GMF / MLP / NeuMF behind one interface, whatever the engine.

    Args:
        config: architecture (kind, factors, layers, regularisation).
        train_config: how `fit` trains (epochs, batch size, optimizer, negatives, seed).
        init_params: optional starting parameters (e.g. fused GMF + MLP for pretrained NeuMF); when None,
            `fit` starts from `model.ncf.params.init_params` with the training seed.
    """

    engine: str = "abstract"

    def __init__(
        self,
        config: NCFConfig | None = None,
        train_config: TrainConfig | None = None,
        init_params: Params | None = None,
    ) -> None:
        self.config = config or NCFConfig()
        self.train_config = train_config or TrainConfig()
        self.init_params = init_params

    # --- engine hooks -------------------------------------------------------------------------------
    @abstractmethod
    def build(self, n_users: int, n_items: int, params: Params) -> None:
        """Create the engine's model and optimizer state holding `params` (names per `model.ncf.params`)."""

    @abstractmethod
    def get_params(self) -> Params:
        """Copies of the current parameters as float32 NumPy arrays."""

    @abstractmethod
    def set_params(self, params: Params) -> None:
        """Overwrite the current parameters (optimizer state is kept)."""

    @abstractmethod
    def set_learning_rate(self, learning_rate: float) -> None:
        """Set the optimizer's step size from now on (the trainer's per-epoch schedule); the decoupled
        weight decay scales with it, as in Keras 3 (each step shrinks by learning_rate * weight_decay)."""

    @abstractmethod
    def train_epoch(
        self, user_idx: np.ndarray, item_idx: np.ndarray, labels: np.ndarray, batch_size: int
    ) -> float:
        """One pass over the given examples, in the given order, in mini-batches; returns the mean log loss.

        Args:
            user_idx, item_idx: (m,) int32; labels: (m,) float32 in {0, 1}. Already shuffled by the trainer.
        """

    # --- shared behaviour ---------------------------------------------------------------------------
    def fit(self, train: Interactions, validation: HeldOut | None = None) -> Self:
        """Train with `NeuMFTrainer` (best epoch on validation HR@10 when `validation` is given).

        With `train_config.pretrain` a NeuMF model first trains a GMF and an MLP of the same engine and
        starts from their fused weights (`model.ncf.pretrain`; each tower with its own batch size, schedule
        and negatives, `TrainConfig.tower_config`), unless `init_params` was given; the two
        trained models stay in `pretrained_` ({"gmf": ..., "mlp": ...}), and the fused NeuMF then trains
        at `finetune_learning_rate` and with `finetune_weight_decay` when set (they become
        `train_config.learning_rate` / `weight_decay`).
        """
        from model.trainer import NeuMFTrainer

        if self.train_config.pretrain and self.config.kind == "neumf" and self.init_params is None:
            from model.ncf.pretrain import pretrained_neumf_params

            self.init_params, self.pretrained_ = pretrained_neumf_params(self, train, validation)
            cfg = self.train_config
            finetune = {
                "learning_rate": cfg.finetune_learning_rate,
                "weight_decay": cfg.finetune_weight_decay,
            }
            self.train_config = cfg.model_copy(update={k: v for k, v in finetune.items() if v is not None})
        NeuMFTrainer(self.train_config).fit(self, train, validation)
        return self

    def refit(self, train: Interactions, keep_towers: Collection[str] = ()) -> NCFModel:
        """A fresh model of the same engine and configuration trained on `train` for `best_epoch_` epochs
        with no validation, from the same kind of start: a pretrained NeuMF first refits its GMF and MLP
        for their own best epochs and fuses them, a warm-started model starts from its `init_params`. With
        `best_epoch_` 0 (the start was the best checkpoint) that start is the refit model, untrained.

        Used after model selection to train on everything but the evaluated item (e.g. train plus the
        validation items before reporting test figures, or all data in the batch job). `keep_towers`
        ("gmf", "mlp") names pretrained towers reused as trained in the selection run instead of refit
        (cheaper, less accurate: `bench/refit_towers.py`); ValueError for a tower the model does not have.
        """
        from model.ncf.params import fuse_pretrained

        if unknown := set(keep_towers) - set(getattr(self, "pretrained_", {})):
            raise ValueError(f"keep_towers names no pretrained tower of this model: {sorted(unknown)}")
        cfg = self.train_config
        train_config = cfg.model_copy(
            update={
                "epochs": max(self.best_epoch_, 1),
                "patience": 0,
                "pretrain": False,
                "schedule_epochs": cfg.schedule_epochs or cfg.epochs,  # the same learning-rate curve
            }
        )
        fresh = type(self)(self.config, train_config)
        if hasattr(self, "pretrained_"):
            fresh.pretrained_ = {
                kind: tower if kind in keep_towers else tower.refit(train)
                for kind, tower in self.pretrained_.items()
            }
            gmf, mlp = (fresh.pretrained_[kind].get_params() for kind in TOWERS)
            fresh.init_params = fuse_pretrained(gmf, mlp, alpha=cfg.pretrain_alpha)
        else:
            fresh.init_params = self.init_params  # the same start (None: a fresh random one)
        if self.best_epoch_ == 0:  # the start itself was the best checkpoint: nothing to train
            fresh.build(train.n_users, train.n_items, fresh.init_params)
            fresh.history_, fresh.best_epoch_ = [], 0
            return fresh
        return fresh.fit(train, None)

    def score_users(self, user_idx: np.ndarray) -> np.ndarray:
        """(c,) int -> (c, n_items) float32 probabilities, via the structured NumPy scorer."""
        return score_all_items(self._inference_params(), self.config, np.asarray(user_idx, dtype=np.int64))

    def _inference_params(self) -> Params:
        return self.get_params()

    def save(
        self, path: str | Path, user_ids: np.ndarray | None = None, item_ids: np.ndarray | None = None
    ) -> Path:
        """Write `config.json`, `weights.npz` and, when given, `id_maps.npz` (raw ids by dense index)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        meta = {
            "engine": self.engine,
            "n_users": self.n_users,
            "n_items": self.n_items,
            "config": self.config.model_dump(mode="json"),
            "train_config": self.train_config.model_dump(mode="json"),
        }
        (path / CONFIG_FILE).write_text(json.dumps(meta, indent=2))
        np.savez(path / WEIGHTS_FILE, **self.get_params())
        if user_ids is not None and item_ids is not None:
            np.savez(path / ID_MAPS_FILE, user_ids=user_ids, item_ids=item_ids)
        return path

    @classmethod
    def load(cls, path: str | Path, engine: str | None = None) -> NCFModel:
        """Load a saved model; `engine` ("keras" | "numpy") overrides the engine it was saved with.

        Called on a concrete engine class, that engine is used.
        """
        path = Path(path)
        meta = json.loads((path / CONFIG_FILE).read_text())
        config = NCFConfig.model_validate(meta["config"])
        train_config = TrainConfig.model_validate(meta["train_config"])
        with np.load(path / WEIGHTS_FILE, allow_pickle=False) as npz:
            params = {k: npz[k] for k in npz.files}
        check_params(params, config, meta["n_users"], meta["n_items"])
        target = cls if cls is not NCFModel else engine_class(engine or meta["engine"])
        model = target(config, train_config)
        model.n_users, model.n_items = meta["n_users"], meta["n_items"]
        model.build(meta["n_users"], meta["n_items"], params)
        return model


def load_id_maps(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(user_ids, item_ids) int64 saved beside a model."""
    with np.load(Path(path) / ID_MAPS_FILE, allow_pickle=False) as npz:
        return npz["user_ids"], npz["item_ids"]


def engine_class(engine: str) -> type[NCFModel]:
    """The NCFModel subclass of an engine name; imports it lazily (Keras pulls in TensorFlow)."""
    if engine == "keras":
        from model.ncf.keras_engine import KerasNCF

        return KerasNCF
    if engine == "numpy":
        from model.ncf.numpy_engine import NumpyNCF

        return NumpyNCF
    raise ValueError(f"unknown engine {engine!r}; choose 'keras' or 'numpy'")
