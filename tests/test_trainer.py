"""`NeuMFTrainer` with a scripted engine: data it sees, early stopping, best-epoch restore, history."""

from __future__ import annotations

import numpy as np
import pytest

from model.data.interactions import Interactions
from model.data.split import HeldOut
from model.ncf.base import NCFModel
from model.ncf.config import NCFConfig, TrainConfig
from model.ncf.params import init_params
from model.ncf.trainer import NeuMFTrainer

N_USERS, N_ITEMS = 6, 130


class ScriptedModel(NCFModel):
    """An engine whose only parameter counts epochs; its validation quality follows `quality[epoch]`.

    It records every (user, item, label) given to `train_epoch` and every pair given to `score`.
    """

    engine = "scripted"

    def __init__(self, quality: list[float], **kwargs) -> None:
        super().__init__(NCFConfig(kind="gmf", factors=1), **kwargs)
        self.quality = quality
        self.trained: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.scored: list[tuple[np.ndarray, np.ndarray]] = []
        self.learning_rates: list[float] = []
        self.batch_sizes: list[int] = []
        self.start_quality: float | None = None  # validation quality of a given start (epoch 0)

    def build(self, n_users, n_items, params):
        self.n_users, self.n_items = n_users, n_items
        self.params = {k: v.copy() for k, v in params.items()}
        self.epoch = 0

    def get_params(self):
        return {**{k: v.copy() for k, v in self.params.items()}, "epoch": np.array([self.epoch])}

    def set_params(self, params):
        self.epoch = int(params["epoch"][0])

    def set_learning_rate(self, learning_rate):
        self.learning_rates.append(learning_rate)

    def train_epoch(self, user_idx, item_idx, labels, batch_size):
        self.trained.append((user_idx.copy(), item_idx.copy(), labels.copy()))
        self.batch_sizes.append(batch_size)
        self.epoch += 1
        return 1.0 / self.epoch

    def score(self, user_idx, item_idx):
        self.scored.append((np.asarray(user_idx).copy(), np.asarray(item_idx).copy()))
        # Candidates arrive user by user, 1 + 99 wide: the positive (column 0) scores 1 (top) for a
        # `quality` share of users and 0 (last) for the others; negatives score 0.5.
        quality = self.quality[self.epoch - 1] if self.epoch else self.start_quality
        good = (np.asarray(user_idx) < round(quality * N_USERS)).astype(np.float32)
        scores = np.full(len(user_idx), 0.5, np.float32)
        scores[:: self.width] = good[:: self.width]
        return scores


def held_out(users, items, seed) -> HeldOut:
    rng = np.random.default_rng(seed)
    negatives = np.stack(
        [rng.choice(np.setdiff1d(np.arange(N_ITEMS), [i]), 99, replace=False) for i in items]
    )
    return HeldOut(
        np.asarray(users, np.int32), np.asarray(items, np.int32), np.column_stack([items, negatives])
    )


def data():
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(N_USERS), 5).astype(np.int32)
    items = np.concatenate([rng.choice(20, 5, replace=False) for _ in range(N_USERS)]).astype(np.int32)
    train = Interactions(users, items, N_USERS, N_ITEMS)
    validation = held_out(np.arange(N_USERS), np.full(N_USERS, 20), seed=1)
    test = held_out(np.arange(N_USERS), np.full(N_USERS, 25), seed=2)
    return train, validation, test


def fit(quality, start_quality=None, **train_overrides):
    """Train a `ScriptedModel`; with `start_quality`, from given starting parameters of that quality."""
    train, validation, _ = data()
    base = {"epochs": 10, "batch_size": 8, "patience": 2, "seed": 5, "recent_weight": 1}
    config = TrainConfig(**{**base, **train_overrides})
    tiny = NCFConfig(kind="gmf", factors=1)
    start = None if start_quality is None else init_params(tiny, N_USERS, N_ITEMS, seed=0)
    model = ScriptedModel(quality, train_config=config, init_params=start)
    model.start_quality, model.width = start_quality, validation.candidates.shape[1]
    return NeuMFTrainer(config).fit(model, train, validation)


def test_trainer_sees_only_training_positives_and_validation_candidates():
    train, validation, test = data()
    model = fit([0.5] * 10, patience=0, num_negatives=3)
    train_pairs = set(zip(train.user_idx.tolist(), train.item_idx.tolist(), strict=True))
    test_pairs = set(zip(test.user_idx.tolist(), test.item_idx.tolist(), strict=True))
    for users, items, labels in model.trained:
        assert len(users) == len(train) * 4
        positives = set(zip(users[labels == 1].tolist(), items[labels == 1].tolist(), strict=True))
        assert positives == train_pairs
        negatives = set(zip(users[labels == 0].tolist(), items[labels == 0].tolist(), strict=True))
        assert not negatives & train_pairs
    # Fresh negatives and a new shuffle every epoch.
    assert not np.array_equal(model.trained[0][1], model.trained[1][1])
    scored = {(u, i) for users, items in model.scored for u, i in zip(users, items, strict=True)}
    val_candidates = {
        (u, i) for u, row in zip(validation.user_idx, validation.candidates, strict=True) for i in row
    }
    assert scored == val_candidates
    assert not scored & test_pairs - val_candidates


def test_recency_weighting_repeats_each_users_newest_positive():
    train, _, _ = data()
    model = fit([0.5] * 2, epochs=2, patience=0, num_negatives=1, recent_fraction=0.2, recent_weight=3)
    newest = train.item_idx[4::5]  # data() gives every user 5 rows, oldest first; ceil(0.2 * 5) = 1
    for users, items, labels in model.trained:
        assert len(users) == 2 * (len(train) + 2 * N_USERS)
        pos_users, pos_items = users[labels == 1], items[labels == 1]
        repeats = np.bincount(pos_users * N_ITEMS + pos_items, minlength=N_USERS * N_ITEMS)
        repeats = repeats.reshape(N_USERS, N_ITEMS)
        np.testing.assert_array_equal(repeats[np.arange(N_USERS), newest], 3)
        assert repeats.sum() == len(train) + 2 * N_USERS


def test_a_warm_start_is_scored_as_epoch_0_and_kept_when_no_epoch_beats_it():
    model = fit([1 / 3, 0.5, 0.9], start_quality=0.5)
    assert [row["epoch"] for row in model.history_] == [0, 1, 2]  # stopped: 2 epochs without a gain
    assert "loss" not in model.history_[0] and round(model.history_[0]["val_hr@10"], 4) == 0.5
    assert model.best_epoch_ == 0 and model.epoch == 0  # the start's parameters are restored
    model = fit([1 / 3, 2 / 3, 0.5, 0.5], start_quality=0.5)
    assert model.best_epoch_ == 2 and model.epoch == 2


def test_early_stopping_restores_the_best_epoch():
    model = fit([0.2, 0.5, 0.8, 0.6, 0.5, 0.4, 0.9, 0.9, 0.9, 0.9], patience=2)
    assert model.best_epoch_ == 3
    assert [row["epoch"] for row in model.history_] == [1, 2, 3, 4, 5]
    assert model.epoch == 3  # parameters of epoch 3 restored
    assert [round(row["val_hr@10"], 4) for row in model.history_] == [0.1667, 0.5, 0.8333, 0.6667, 0.5]
    assert all({"loss", "val_ndcg@10", "seconds"} <= set(row) for row in model.history_)


def test_without_patience_all_epochs_run():
    model = fit([0.2, 0.9, 0.1, 0.1], epochs=4, patience=0)
    assert len(model.history_) == 4 and model.best_epoch_ == 2 and model.epoch == 2


def test_without_validation_the_last_epoch_counts():
    train, _, _ = data()
    config = TrainConfig(epochs=3, batch_size=8, seed=5)
    model = NeuMFTrainer(config).fit(ScriptedModel([0.0] * 3, train_config=config), train, None)
    assert model.best_epoch_ == 3 and model.epoch == 3 and "val_hr@10" not in model.history_[0]


def test_training_data_is_reproducible_with_the_seed():
    a, b, c = fit([0.5] * 3, epochs=3), fit([0.5] * 3, epochs=3), fit([0.5] * 3, epochs=3, seed=6)
    for (ua, ia, la), (ub, ib, lb) in zip(a.trained, b.trained, strict=True):
        np.testing.assert_array_equal(ua, ub)
        np.testing.assert_array_equal(ia, ib)
        np.testing.assert_array_equal(la, lb)
    assert not np.array_equal(a.trained[0][1], c.trained[0][1])


def test_constant_schedule_keeps_the_learning_rate():
    model = fit([0.5] * 3, epochs=3, patience=0, learning_rate=0.01, lr_schedule="constant")
    assert model.learning_rates == [0.01, 0.01, 0.01]


class RefitScriptedModel(ScriptedModel):
    """A scripted engine that `NCFModel.refit` can build like a real one: (config, train_config)."""

    def __init__(self, config=None, train_config=None, init_params=None) -> None:
        super().__init__([0.2, 0.5, 0.8, 0.6, 0.5] + [0.1] * 5, train_config=train_config)


def test_cosine_schedule_by_hand_and_refit_follows_the_same_curve():
    train, validation, _ = data()
    config = TrainConfig(epochs=10, batch_size=8, patience=2, learning_rate=0.01, lr_schedule="cosine")
    model = RefitScriptedModel(train_config=config)
    model.width = validation.candidates.shape[1]
    model.fit(train, validation)
    # epoch e of 10: 0.01 * (1 + cos(pi * (e - 1) / 10)) / 2; early stop after epoch 5, best epoch 3
    expected = [0.01, 0.0097553, 0.0090451, 0.0079389, 0.0065451]
    np.testing.assert_allclose(model.learning_rates, expected, atol=1e-7)
    refit = model.refit(train)
    assert refit.train_config.epochs == 3 and refit.train_config.schedule_epochs == 10
    np.testing.assert_allclose(refit.learning_rates, expected[:3], atol=1e-7)


def test_a_cosine_curve_shorter_than_the_run_is_refused():
    with pytest.raises(ValueError, match="schedule_epochs"):
        TrainConfig(epochs=10, schedule_epochs=5, lr_schedule="cosine")


def test_softmax_loss_trains_on_whole_shuffled_groups():
    model = fit([0.5] * 2, epochs=2, patience=0, loss="softmax", num_negatives=3, batch_size=10)
    for users, items, labels in model.trained:
        # batch_size 10 holds two whole groups of 4: the trainer hands over 8 (checked by the engines)
        groups = [a.reshape(-1, 4) for a in (users, items, labels)]
        np.testing.assert_array_equal(groups[2], np.tile([1, 0, 0, 0], (groups[2].shape[0], 1)))
        assert (groups[0] == groups[0][:, :1]).all()
        assert not np.array_equal(groups[0][:, 0], np.sort(groups[0][:, 0]))  # shuffled, by group
    assert model.batch_sizes == [8, 8]


def test_softmax_loss_needs_negatives_in_every_tower():
    with pytest.raises(ValueError, match="num_negatives >= 1"):
        TrainConfig(loss="softmax", num_negatives=0)
    config = TrainConfig(loss="softmax", num_negatives=4, gmf={"num_negatives": 0})
    with pytest.raises(ValueError, match="num_negatives >= 1"):
        config.tower_config("gmf")
    assert config.tower_config("mlp").group_size() == 5
    assert TrainConfig(batch_size=4096).group_batch_size() == 4096
    assert TrainConfig(batch_size=4096, loss="softmax", num_negatives=8).group_batch_size() == 4095
