"""Warm start (`model.ncf.warm_start.warm_params`): known users and movies keep their trained rows whatever
their new dense index, new ones get fresh rows, dense layers are copied, another architecture is refused;
and a model started from them trains (the NCF fit's `init_params`)."""

from __future__ import annotations

import numpy as np
import pytest

from model.data import DataLoader, leave_one_out
from model.ncf.config import NCFConfig
from model.ncf.params import init_params
from model.ncf.warm_start import warm_params
from model.registry import build_model

CONFIG = NCFConfig(kind="neumf", factors=4, layers=(8, 4))


def test_rows_follow_the_raw_ids_and_new_ids_get_fresh_rows():
    old_users, old_items = np.array([10, 30, 20]), np.array([7, 5])
    previous = init_params(CONFIG, 3, 2, seed=1)
    new_users, new_items = np.array([20, 40, 10, 30]), np.array([5, 9, 7])  # 40 and 9 are new
    params = warm_params(previous, CONFIG, (old_users, old_items), (new_users, new_items), seed=2)
    fresh = init_params(CONFIG, 4, 3, seed=2)
    for table in ("gmf", "mlp"):
        users, items = params[f"{table}/user_embedding"], params[f"{table}/item_embedding"]
        old_u, old_i = previous[f"{table}/user_embedding"], previous[f"{table}/item_embedding"]
        np.testing.assert_array_equal(users[[0, 2, 3]], old_u[[2, 0, 1]])  # users 20, 10, 30
        np.testing.assert_array_equal(users[1], fresh[f"{table}/user_embedding"][1])  # user 40
        np.testing.assert_array_equal(items[[0, 2]], old_i[[1, 0]])  # movies 5, 7
        np.testing.assert_array_equal(items[1], fresh[f"{table}/item_embedding"][1])  # movie 9
    for name in ("mlp/dense_0/kernel", "mlp/dense_0/bias", "output/kernel", "output/bias"):
        np.testing.assert_array_equal(params[name], previous[name])
    assert all(value.dtype == np.float32 for value in params.values())


def test_another_architecture_is_refused():
    previous = init_params(NCFConfig(kind="neumf", factors=8, layers=(8, 4)), 3, 2, seed=1)
    with pytest.raises(ValueError):
        warm_params(previous, CONFIG, (np.arange(3), np.arange(2)), (np.arange(3), np.arange(2)), seed=0)


def test_a_warm_started_model_trains_on_from_the_given_start(ml100k_dir):
    train = leave_one_out(DataLoader(ml100k_dir).load(), seed=0, n_negatives=2).train
    options = {"config": {"factors": 8}, "train_config": {"epochs": 2, "seed": 3}}
    yesterday = build_model("gmf", engine="numpy", **options).fit(train)
    ids = (np.arange(train.n_users), np.arange(train.n_items))
    warm = build_model("gmf", engine="numpy", **options)
    warm.init_params = warm_params(yesterday.get_params(), warm.config, ids, ids, seed=0)
    cold = build_model("gmf", engine="numpy", **options)
    first_loss = [model.fit(train).history_[0]["loss"] for model in (warm, cold)]
    assert first_loss[0] < first_loss[1] - 0.05  # it starts where yesterday's model stopped, not from scratch
