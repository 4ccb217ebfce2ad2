"""`NCFModel`: the abstract base every NCF engine (Keras, NumPy) implements.

The split of work:
- the constructor stores hyperparameters only (`NCFConfig`, `TrainConfig`);
- an engine implements `build`, `get_params`, `set_params`, `train_epoch` and pair scoring;
- `fit` hands the epoch loop to `NeuMFTrainer` (`model.ncf.trainer`), which knows nothing about NeuMF;
- `save` / `model.base.load_model` use one engine-neutral layout: `model.json` + `weights.npz` (+ optional
  id maps), never pickle, so a model saved by one engine loads into the other.
"""

from __future__ import annotations

import json
import logging
from abc import abstractmethod
from collections.abc import Collection
from pathlib import Path
from typing import Any, Self

import numpy as np

from model.base import MODEL_FILE, Recommender, save_id_maps
from model.data.interactions import Interactions
from model.data.split import HeldOut
from model.ncf.config import TOWERS, NCFConfig, TrainConfig
from model.ncf.params import Params, check_params, fuse_pretrained, init_params
from model.ncf.scoring import score_all_items
from model.ncf.trainer import NeuMFTrainer
from model.ncf.warm_start import warm_params
from model.registry import engine_class

logger = logging.getLogger(__name__)

WEIGHTS_FILE = "weights.npz"


class NCFModel(Recommender):
    """GMF / MLP / NeuMF behind one interface, whatever the engine.

    Args:
        config: architecture (kind, factors, layers, regularisation).
        train_config: how `fit` trains (epochs, batch size, optimizer, negatives, seed).
        init_params: optional starting parameters (e.g. fused GMF + MLP for pretrained NeuMF); when None,
            `fit` starts from `model.ncf.params.init_params` with the training seed.
    """

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
        """One pass over the given examples, in the given order, in mini-batches; returns the mean training
        loss (`train_config.loss`: per example under the log loss, per group under the softmax loss).

        Args:
            user_idx, item_idx: (m,) int32; labels: (m,) float32 in {0, 1}. Already shuffled by the trainer.
                Under the softmax loss the examples come in groups of g = `train_config.group_size()` rows,
                each a positive then its negatives, and m and `batch_size` are multiples of g.
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
        if self.train_config.pretrain and self.config.kind == "neumf" and self.init_params is None:
            self.pretrained_ = self._pretrain_towers(train, validation)
            gmf, mlp = (self.pretrained_[kind].get_params() for kind in TOWERS)
            self.init_params = fuse_pretrained(gmf, mlp, alpha=self.train_config.pretrain_alpha)
            cfg = self.train_config
            finetune = {
                "learning_rate": cfg.finetune_learning_rate,
                "weight_decay": cfg.finetune_weight_decay,
            }
            self.train_config = cfg.model_copy(update={k: v for k, v in finetune.items() if v is not None})
        NeuMFTrainer(self.train_config).fit(self, train, validation)
        return self

    def warm_start(
        self,
        previous: Recommender,
        old_ids: tuple[np.ndarray, np.ndarray],
        new_ids: tuple[np.ndarray, np.ndarray],
    ) -> str | None:
        """`Recommender.warm_start` for NCF: `previous` must be an NCF model of the same architecture
        (`config`); its parameters become `init_params` through `model.ncf.warm_start.warm_params` (new
        users and movies get fresh rows from the training seed), so no pretraining runs."""
        if not isinstance(previous, NCFModel) or previous.config != self.config:
            return f"the previous model is not an NCF model with config {self.config.model_dump()}"
        self.init_params = warm_params(
            previous.get_params(), self.config, old_ids, new_ids, self.train_config.seed
        )
        return None

    def _pretrain_towers(self, train: Interactions, validation: HeldOut | None) -> dict[str, NCFModel]:
        """NeuMF pretraining (He et al. 2017, section 3.4.1): a GMF and an MLP with this model's factors,
        layers and engine, each trained with its own tower settings (`TrainConfig.tower_config`); fused by
        `fuse_pretrained` with `pretrain_alpha` on the output layer into NeuMF's start."""
        towers = {}
        for kind in TOWERS:
            logger.info("pretraining %s", kind)
            config = self.config.model_copy(update={"kind": kind})
            towers[kind] = type(self)(config, self.train_config.tower_config(kind)).fit(train, validation)
        return towers

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

    def item_embeddings(self) -> np.ndarray | None:
        """The GMF item embeddings (GMF and NeuMF); None for MLP, whose item embedding only feeds its
        dense layers (its cosine was not measured)."""
        return self.get_params().get("gmf/item_embedding")

    def hyperparameters(self) -> dict[str, Any]:
        """Architecture and training configuration (JSON-able)."""
        return {
            "config": self.config.model_dump(mode="json"),
            "train_config": self.train_config.model_dump(mode="json"),
        }

    def clone(self) -> Self:
        return type(self)(self.config, self.train_config)

    def report(self) -> dict[str, Any]:
        """`Recommender.report` plus each pretrained tower's history."""
        report = super().report()
        if hasattr(self, "pretrained_"):
            report["pretrain_history"] = {kind: sub.history_ for kind, sub in self.pretrained_.items()}
        return report

    def save(
        self, path: str | Path, user_ids: np.ndarray | None = None, item_ids: np.ndarray | None = None
    ) -> Path:
        """Write `model.json` (class, engine, sizes, configuration), `weights.npz` and, when given,
        `id_maps.npz` (raw ids by dense index)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        meta = {
            "class": f"{NCFModel.__module__}.{NCFModel.__qualname__}",
            "engine": self.engine,
            "n_users": self.n_users,
            "n_items": self.n_items,
            **self.hyperparameters(),
        }
        (path / MODEL_FILE).write_text(json.dumps(meta, indent=2))
        np.savez(path / WEIGHTS_FILE, **self.get_params())
        save_id_maps(path, user_ids, item_ids)
        return path

    def prepare_scoring(self, n_users: int, n_items: int) -> Self:
        """Build this model with random parameters for `n_users` x `n_items` and score a few users once,
        so that the scorer is compiled (the Keras engine compiles per model instance, ~0.5-1 s) before
        `load_weights` gives it the trained parameters: for a scoring worker that is ready before the model
        is trained. Returns self."""
        self.build(n_users, n_items, init_params(self.config, n_users, n_items, seed=0))
        self.score_users(np.arange(min(n_users, 1), dtype=np.int64))
        return self

    def load_weights(self, path: str | Path) -> bool:
        """Set the parameters `save` wrote to `path` into this built model when that model has the same
        architecture (`NCFConfig`) and sizes, keeping this instance's compiled scorer; returns whether it
        did (False: nothing changed, load it with `model.base.load_model`)."""
        path = Path(path)
        meta = json.loads((path / MODEL_FILE).read_text())
        same = (
            meta["class"] == f"{NCFModel.__module__}.{NCFModel.__qualname__}"
            and NCFConfig.model_validate(meta["config"]) == self.config
            and (meta["n_users"], meta["n_items"]) == (self.n_users, self.n_items)
        )
        if same:
            with np.load(path / WEIGHTS_FILE, allow_pickle=False) as npz:
                self.set_params({k: npz[k] for k in npz.files})
        return same

    @classmethod
    def load(cls, path: str | Path, engine: str | None = None) -> NCFModel:
        """Load a saved model; `engine` ("keras" | "numpy") overrides the engine it was saved with.

        Called on a concrete engine class, that engine is used.
        """
        path = Path(path)
        return cls._load(path, json.loads((path / MODEL_FILE).read_text()), engine=engine)

    @classmethod
    def _load(cls, path: Path, meta: dict[str, Any], engine: str | None = None) -> NCFModel:
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
