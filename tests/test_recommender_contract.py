"""`RecommenderContract`: what every model honours, baseline or NCF, as one test mixin.

A subclass sets `name` (registered model name) and may set `options` (small hyperparameters for a fast
fit). The batch job relies on exactly these: fit returns self, refit gives a fresh fitted model with
the same hyperparameters, batched top-N masks what it is told to, save/load round-trips, and the report
is JSON.
"""

from __future__ import annotations

import json
from typing import ClassVar

import numpy as np
import scipy.sparse as sp

from model.base import Recommender, load_model
from model.data.interactions import Interactions
from model.metrics import full_rank
from model.registry import build_model

N_USERS, N_ITEMS = 24, 20


def contract_data(seed: int = 0) -> tuple[Interactions, Interactions]:
    """(train, more): two blocks of users and items, 6 positives per user; `more` adds one per user."""
    rng = np.random.default_rng(seed)
    rows = [rng.choice(10, size=7, replace=False) + (0 if u < N_USERS // 2 else 10) for u in range(N_USERS)]
    items = np.array(rows, dtype=np.int32)
    users = np.repeat(np.arange(N_USERS, dtype=np.int32), 6)
    train = Interactions(users, items[:, :6].ravel(), N_USERS, N_ITEMS)
    more = Interactions(np.repeat(np.arange(N_USERS, dtype=np.int32), 7), items.ravel(), N_USERS, N_ITEMS)
    return train, more


class RecommenderContract:
    name = "itempop"
    options: ClassVar[dict] = {}  # small hyperparameters for a fast fit

    def fitted(self) -> Recommender:
        train, _ = contract_data()
        model = build_model(self.name, **self.options)
        assert model.fit(train) is model
        return model

    def test_refit_is_a_fresh_model_with_the_same_hyperparameters(self):
        model = self.fitted()
        _, more = contract_data()
        refit = model.refit(more)
        assert refit is not model and type(refit) is type(model)
        same, refit_same = model.hyperparameters(), refit.hyperparameters()
        if "train_config" in same:  # NCF: the refit trains for the selected number of epochs, no patience
            assert refit_same.pop("train_config")["epochs"] == max(model.best_epoch_, 1)
            same.pop("train_config")
        assert refit_same == same
        assert (refit.n_users, refit.n_items) == (N_USERS, N_ITEMS)
        assert np.isfinite(refit.score_users(np.arange(N_USERS))).all()

    def test_recommend_masks_excluded_items_and_ranks_by_score(self):
        model = self.fitted()
        train, _ = contract_data()
        users = np.array([0, 5, 13, 23])
        exclude = train.to_csr()[users]
        items, scores, available = model.recommend(users, 5, exclude, workers=2)
        assert items.shape == scores.shape == (4, 5) and (available == 5).all()
        rated = exclude.toarray().astype(bool)
        assert not np.take_along_axis(rated, items, axis=1).any()
        assert (np.diff(scores, axis=1) <= 0).all()
        full = model.score_users(users)
        np.testing.assert_allclose(scores, np.take_along_axis(full, items, axis=1), rtol=1e-6)
        best_unrated = np.where(rated, -np.inf, full).max(axis=1)
        np.testing.assert_allclose(scores[:, 0], best_unrated, rtol=1e-6)
        everything = sp.csr_matrix(np.ones((4, N_ITEMS), dtype=np.float32))
        assert (model.recommend(users, 5, everything)[2] == 0).all()

    def test_recommend_and_rank_gives_the_full_ranking_rank_of_held_items(self):
        """The scoring pass' ranks equal `model.metrics.full_rank` on the same scores, and its lists equal
        `recommend`'s."""
        model = self.fitted()
        _, more = contract_data()
        users = np.arange(N_USERS)
        exclude = more.to_csr()[users]
        held = exclude.indices[exclude.indptr[1:] - 1].astype(np.int64)  # one rated item per user
        held[3] = -1  # a user without a held item
        items, scores, available, ranks = model.recommend_and_rank(users, 5, exclude, held, workers=2)
        expected = full_rank(model.score_users(users), np.maximum(held, 0), exclude.toarray().astype(bool))
        expected[3] = -1
        np.testing.assert_array_equal(ranks, expected)
        for got, want in zip((items, scores, available), model.recommend(users, 5, exclude), strict=True):
            np.testing.assert_array_equal(got, want)

    def test_save_and_load_give_the_same_scores(self, tmp_path):
        model = self.fitted()
        ids = np.arange(100, 100 + N_USERS), np.arange(500, 500 + N_ITEMS)
        model.save(tmp_path / "m", user_ids=ids[0], item_ids=ids[1])
        loaded = load_model(tmp_path / "m")
        assert type(loaded) is type(model) and loaded.hyperparameters() == model.hyperparameters()
        users = np.arange(N_USERS)
        np.testing.assert_allclose(loaded.score_users(users), model.score_users(users), rtol=1e-6)

    def test_report_is_json_and_names_the_model(self):
        model = self.fitted()
        report = json.loads(json.dumps(model.report()))
        assert report["class"] == f"{type(model).__module__}.{type(model).__qualname__}"
        assert report["engine"] == model.engine
        assert report["hyperparameters"] == json.loads(json.dumps(model.hyperparameters()))


class TestItemPop(RecommenderContract):
    name = "itempop"


class TestRandom(RecommenderContract):
    name = "random"


class TestItemKNN(RecommenderContract):
    name = "itemknn"

    options: ClassVar[dict] = {"k": 5}


class TestBPR(RecommenderContract):
    name = "bpr"

    options: ClassVar[dict] = {"factors": 4, "iterations": 20}


class TestIALS(RecommenderContract):
    name = "ials"

    options: ClassVar[dict] = {"factors": 4, "iterations": 3, "num_threads": 1}


class TestEALS(RecommenderContract):
    name = "eals"

    options: ClassVar[dict] = {"factors": 4, "iterations": 3}


class TestEASE(RecommenderContract):
    name = "ease"

    options: ClassVar[dict] = {"l2": 10.0}


class TestNeuMFNumpy(RecommenderContract):
    name = "neumf"

    options: ClassVar[dict] = {
        "engine": "numpy",
        "config": {"factors": 4, "layers": (8, 4)},
        "train_config": {"epochs": 1, "batch_size": 64, "pretrain": False},
    }


class TestNeuMFBlend(RecommenderContract):
    name = "neumf_blend"

    options: ClassVar[dict] = {
        "weight": 0.5,
        "neumf_options": TestNeuMFNumpy.options,
        "partner_options": {"l2": 10.0},
    }
