"""`NeuMFTrainer`: the epoch loop for any `NCFModel` engine, knowing nothing about NeuMF itself (it drives
any model with the `Trainable` hooks).

Per epoch: the step size of the learning-rate schedule (`epoch_learning_rate`), fresh negatives from
the data layer (`NegativeSampler.epoch(e)`, with each user's newest positives weighted per
`recent_fraction` / `recent_weight`), a seeded shuffle (of whole groups, a positive and its negatives,
under the softmax loss), one `model.train_epoch` call, then HR@10 /
NDCG@10 on the **validation** items (sampled protocol). The best epoch's parameters are kept
(`get_params` / `set_params`) and restored at the end; a model with given starting parameters
(`init_params`, e.g. NeuMF after pretraining) has its start scored too, as epoch 0, and keeps it when no
epoch beats it; training stops early after `patience` epochs
without a validation HR@10 gain. Test items are never passed in, so never seen.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any, Protocol

import numpy as np

from model.data.interactions import Interactions
from model.data.sampling import NegativeSampler
from model.data.split import HeldOut
from model.evaluation import sampled_ranks
from model.metrics import hit_rate_at, ndcg_at
from model.ncf.config import NCFConfig, TrainConfig
from model.ncf.params import Params, init_params

logger = logging.getLogger(__name__)

K = 10


class Trainable(Protocol):
    """What the trainer needs of a model (`NCFModel` provides it): its architecture, an optional start,
    the engine hooks and pair scoring (for the validation metrics)."""

    config: NCFConfig
    init_params: Params | None
    history_: list[dict[str, Any]]
    best_epoch_: int

    def build(self, n_users: int, n_items: int, params: Params) -> None: ...
    def get_params(self) -> Params: ...
    def set_params(self, params: Params) -> None: ...
    def set_learning_rate(self, learning_rate: float) -> None: ...
    def train_epoch(
        self, user_idx: np.ndarray, item_idx: np.ndarray, labels: np.ndarray, batch_size: int
    ) -> float: ...
    def score(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray: ...


def validation_metrics(model: Trainable, validation: HeldOut) -> tuple[float, float]:
    """(HR@10, NDCG@10) of `model` on the validation items against their sampled candidates."""
    ranks = sampled_ranks(model, validation)
    return hit_rate_at(ranks, K), ndcg_at(ranks, K)


def epoch_learning_rate(cfg: TrainConfig, epoch: int) -> float:
    """The step size of 1-based `epoch` under `cfg.lr_schedule`."""
    if cfg.lr_schedule == "constant":
        return cfg.learning_rate
    length = cfg.schedule_epochs or cfg.epochs
    return cfg.learning_rate * 0.5 * (1.0 + math.cos(math.pi * (epoch - 1) / length))


class NeuMFTrainer:
    """Trains a `Trainable` model (any `NCFModel` engine) per `TrainConfig` (epochs, batch size, negatives,
    patience, seed).

    After `fit`, the model carries `history_` (one dict per epoch: epoch, loss, seconds and, with
    validation, `val_hr@10` / `val_ndcg@10`; a scored warm start comes first as epoch 0, without loss) and
    `best_epoch_` (1-based, or 0 for the warm start; the last epoch without validation).
    """

    def __init__(self, train_config: TrainConfig) -> None:
        self.config = train_config

    def fit(self, model: Trainable, train: Interactions, validation: HeldOut | None = None) -> Trainable:
        cfg = self.config
        start_params = model.init_params
        if start_params is None:
            start_params = init_params(model.config, train.n_users, train.n_items, seed=cfg.seed)
        model.build(train.n_users, train.n_items, start_params)
        sampler = NegativeSampler(
            train,
            num_negatives=cfg.num_negatives,
            seed=cfg.seed,
            recent_fraction=cfg.recent_fraction,
            recent_weight=cfg.recent_weight,
            negative_popularity=cfg.negative_popularity,
        )
        rng = np.random.default_rng([cfg.seed, 1])
        group, batch_size = cfg.group_size(), cfg.group_batch_size()
        history: list[dict[str, float]] = []
        best_hr, best_epoch, best_params = -1.0, 0, None
        if validation is not None and model.init_params is not None:
            # A warm start (e.g. NeuMF fused from its pretrained towers) is itself a candidate: epoch 0.
            start = time.perf_counter()
            hr, ndcg = validation_metrics(model, validation)
            best_hr, best_params = hr, model.get_params()
            history.append(
                {
                    "epoch": 0,
                    "val_hr@10": round(hr, 6),
                    "val_ndcg@10": round(ndcg, 6),
                    "train_seconds": 0.0,
                    "seconds": round(time.perf_counter() - start, 3),
                }
            )
            logger.info("%s start: val HR@10 %.4f NDCG@10 %.4f", model.config.kind, hr, ndcg)
        for epoch in range(1, cfg.epochs + 1):
            start = time.perf_counter()
            model.set_learning_rate(epoch_learning_rate(cfg, epoch))
            examples = list(sampler.epoch(epoch, grouped=group > 1))
            _shuffle(rng, examples, group)
            n_examples = examples[0].shape[0]
            loss = model.train_epoch(*examples, batch_size)
            del examples  # gigabytes on large data: gone before the next epoch is sampled
            train_s = time.perf_counter() - start
            row: dict[str, float] = {"epoch": epoch, "loss": round(float(loss), 6)}
            if validation is not None:
                hr, ndcg = validation_metrics(model, validation)
                row.update({"val_hr@10": round(hr, 6), "val_ndcg@10": round(ndcg, 6)})
                if hr > best_hr:
                    best_hr, best_epoch, best_params = hr, epoch, model.get_params()
            else:
                best_epoch = epoch
            row["train_seconds"] = round(train_s, 3)
            row["seconds"] = round(time.perf_counter() - start, 3)
            history.append(row)
            logger.info(
                "%s epoch %d/%d loss %.4f%s (%.1fs, %.0f samples/s)",
                model.config.kind,
                epoch,
                cfg.epochs,
                loss,
                f" val HR@10 {row['val_hr@10']:.4f} NDCG@10 {row['val_ndcg@10']:.4f}" if validation else "",
                row["seconds"],
                n_examples / max(train_s, 1e-9),
            )
            if validation is not None and cfg.patience and epoch - best_epoch >= cfg.patience:
                logger.info("early stop: no validation HR@10 gain for %d epochs", cfg.patience)
                break
        if best_params is not None:
            model.set_params(best_params)
        model.history_ = history
        model.best_epoch_ = best_epoch
        return model


def _shuffle(rng: np.random.Generator, arrays: list[np.ndarray], group: int = 1) -> None:
    """Put the list's (m,) arrays in one seeded random order, of whole runs of `group` rows (m a multiple
    of `group`; rows keep their order inside a run; with `group` 1 `rng.permutation(m)`'s order),
    replacing them one at a time, so that with the list holding the only references at most one extra copy
    exists beside the int32 order (an epoch of large data is gigabytes)."""
    m = arrays[0].shape[0]
    dtype = np.int32 if m < 2**31 else np.int64
    order = rng.permutation(np.arange(m // group, dtype=dtype))
    if group > 1:
        order = (order[:, None] * dtype(group) + np.arange(group, dtype=dtype)).ravel()
    for k in range(len(arrays)):
        arrays[k] = arrays[k][order]
