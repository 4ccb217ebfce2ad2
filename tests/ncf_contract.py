"""`NCFModelContract`: the behaviour every NCF engine must show, as a test mixin.

An engine's test module subclasses it and sets `engine` (or overrides `make_model`):

    class TestKerasEngine(NCFModelContract):
        engine = "keras"

Covers shapes and dtypes, the get/set_params round trip, a tiny synthetic data set with a known answer
(two user groups that each like one block of items) for GMF, MLP and NeuMF, save/load, pretraining and
seeded reproducibility.
"""

from __future__ import annotations

import numpy as np
import pytest

from model.data.interactions import Interactions
from model.ncf.base import NCFModel
from model.ncf.config import TOWERS, NCFConfig, TowerConfig, TrainConfig
from model.ncf.params import fuse_pretrained, init_params, param_shapes
from model.ncf.scoring import logits_pairs
from model.registry import engine_class

N_USERS, N_ITEMS, BLOCK = 24, 20, 10
NEUTRAL_TOWER = dict.fromkeys(TowerConfig.model_fields)  # a tower that trains like the model itself
TINY = {"factors": 4, "layers": (8, 4)}


def block_data(seed: int = 0) -> tuple[Interactions, np.ndarray]:
    """Users 0..11 like 7 of items 0..9, users 12..23 like 7 of items 10..19 (random subsets).

    Returns:
        (training interactions, (N_USERS, N_ITEMS) bool mask of the unseen items of each user's own block).
    """
    rng = np.random.default_rng(seed)
    users, items = [], []
    unseen = np.zeros((N_USERS, N_ITEMS), dtype=bool)
    for u in range(N_USERS):
        block = np.arange(BLOCK) + (0 if u < N_USERS // 2 else BLOCK)
        liked = rng.choice(block, size=7, replace=False)
        users += [u] * 7
        items += list(liked)
        unseen[u, np.setdiff1d(block, liked)] = True
    train = Interactions(np.array(users, np.int32), np.array(items, np.int32), N_USERS, N_ITEMS)
    return train, unseen


def tiny_train_config(**overrides) -> TrainConfig:
    # 168 positives * 5 = 840 examples = 7 full batches of 120: one compiled shape per model.
    base = {
        "epochs": 40,
        "batch_size": 120,
        "learning_rate": 0.02,
        "num_negatives": 4,
        "seed": 3,
        "pretrain": False,
        "finetune_learning_rate": None,
        "patience": 0,
        "recent_weight": 1,  # the block data has no time order: every positive alike
        "pretrain_alpha": 0.5,  # the paper's fused start
        # the towers train like the model itself unless a test says otherwise
        "gmf": NEUTRAL_TOWER,
        "mlp": NEUTRAL_TOWER,
    }
    return TrainConfig(**{**base, **overrides})


class NCFModelContract:
    """Mixin of engine-independent NCFModel tests; subclasses set `engine`."""

    engine = "keras"

    def make_model(self, config: NCFConfig, train_config: TrainConfig | None = None) -> NCFModel:
        return engine_class(self.engine)(config, train_config or tiny_train_config())

    def built(self, config: NCFConfig, seed: int = 0) -> tuple[NCFModel, dict]:
        model = self.make_model(config)
        params = init_params(config, N_USERS, N_ITEMS, seed)
        model.build(N_USERS, N_ITEMS, params)
        return model, params

    # --- parameters, shapes, dtypes -----------------------------------------------------------------
    @pytest.mark.parametrize("kind", ["gmf", "mlp", "neumf"])
    def test_params_round_trip_exactly(self, kind):
        config = NCFConfig(kind=kind, **TINY)
        model, params = self.built(config)
        got = model.get_params()
        assert list(got) == list(param_shapes(config, N_USERS, N_ITEMS))
        for name, value in params.items():
            assert got[name].dtype == np.float32
            np.testing.assert_array_equal(got[name], value)
        changed = {k: (v + 0.5).astype(np.float32) for k, v in params.items()}
        model.set_params(changed)
        for name, value in model.get_params().items():
            np.testing.assert_array_equal(value, changed[name])

    def test_set_params_rejects_wrong_shapes(self):
        config = NCFConfig(kind="gmf", **TINY)
        model, params = self.built(config)
        params["gmf/user_embedding"] = np.zeros((N_USERS, 5), np.float32)
        with pytest.raises(ValueError):
            model.set_params(params)

    @pytest.mark.parametrize("kind", ["gmf", "mlp", "neumf"])
    def test_scores_match_the_numpy_reference(self, kind):
        config = NCFConfig(kind=kind, **TINY)
        model, params = self.built(config, seed=1)
        # Larger weights than the 0.01 init, so the ReLUs switch and the comparison means something.
        params = {k: (v * 30).astype(np.float32) for k, v in params.items()}
        model.set_params(params)
        users = np.array([0, 5, 23, 7], np.int32)
        items = np.array([3, 19, 0, 7], np.int32)
        scores = model.score(users, items)
        assert scores.shape == (4,) and scores.dtype == np.float32
        expected = 1.0 / (1.0 + np.exp(-logits_pairs(params, config, users, items)))
        np.testing.assert_allclose(scores, expected, rtol=1e-4, atol=1e-6)
        grid = model.score_users(users)
        assert grid.shape == (4, N_ITEMS) and grid.dtype == np.float32
        np.testing.assert_allclose(grid[np.arange(4), items], scores, rtol=1e-4, atol=1e-6)

    # --- learning -----------------------------------------------------------------------------------
    def test_train_epoch_returns_a_falling_log_loss(self):
        config = NCFConfig(kind="neumf", **TINY)
        model, _ = self.built(config)
        rng = np.random.default_rng(0)
        users = rng.integers(0, N_USERS, 240).astype(np.int32)
        items = (users % 2 * BLOCK + rng.integers(0, BLOCK, 240)).astype(np.int32)
        labels = (items < BLOCK).astype(np.float32)
        first = model.train_epoch(users, items, labels, 120)
        assert abs(first - np.log(2.0)) < 0.05  # near-zero logits at init
        for _ in range(30):
            last = model.train_epoch(users, items, labels, 120)
        assert last < first - 0.1

    @pytest.mark.parametrize("optimizer", ["adam", "sgd"])
    def test_set_learning_rate_steps_as_a_model_built_with_that_rate(self, optimizer):
        # Weight decay 10 makes the decoupled shrink (1 - lr * wd) differ visibly between the two rates.
        config = NCFConfig(kind="neumf", **TINY)
        params = init_params(config, N_USERS, N_ITEMS, 0)
        rng = np.random.default_rng(1)
        users = rng.integers(0, N_USERS, 64).astype(np.int32)
        items = rng.integers(0, N_ITEMS, 64).astype(np.int32)
        labels = (items < BLOCK).astype(np.float32)
        after = []
        for lr in (0.05, 0.003):
            train_config = tiny_train_config().model_copy(
                update={"learning_rate": lr, "optimizer": optimizer, "weight_decay": 10.0}
            )
            model = self.make_model(config, train_config)
            model.build(N_USERS, N_ITEMS, params)
            model.set_learning_rate(0.003)
            model.train_epoch(users, items, labels, 64)
            after.append(model.get_params())
        for name, value in after[0].items():
            assert not np.allclose(value, params[name], atol=1e-7), name  # a step happened
            np.testing.assert_allclose(value, after[1][name], rtol=1e-5, atol=1e-7, err_msg=name)

    @pytest.mark.parametrize("kind", ["gmf", "mlp", "neumf"])
    def test_learns_which_block_each_user_likes(self, kind):
        train, unseen = block_data()
        model = self.make_model(NCFConfig(kind=kind, **TINY)).fit(train)
        scores = model.score_users(np.arange(N_USERS))
        seen = np.zeros_like(unseen)
        seen[train.user_idx, train.item_idx] = True
        other_block = ~unseen & ~seen
        # Pairwise: how often an unseen own-block item outranks an other-block item (chance: 0.5).
        wins = (scores[:, :, None] > scores[:, None, :]) & unseen[:, :, None] & other_block[:, None, :]
        pairs = unseen[:, :, None] & other_block[:, None, :]
        auc = wins.sum(axis=(1, 2)) / pairs.sum(axis=(1, 2))
        assert auc.mean() >= 0.9 and np.median(auc) >= 0.95, auc
        assert len(model.history_) == 40 and model.best_epoch_ == 40

    def test_save_load_gives_identical_scores(self, tmp_path):
        train, _ = block_data()
        model = self.make_model(NCFConfig(kind="neumf", **TINY), tiny_train_config(epochs=3)).fit(train)
        model.save(tmp_path / "m")
        users = np.arange(N_USERS)
        for loaded in (NCFModel.load(tmp_path / "m"), type(model).load(tmp_path / "m")):
            assert loaded.engine == model.engine and loaded.config == model.config
            np.testing.assert_array_equal(loaded.score_users(users), model.score_users(users))
            u, i = np.repeat(users, N_ITEMS), np.tile(np.arange(N_ITEMS), N_USERS)
            np.testing.assert_array_equal(loaded.score(u, i), model.score(u, i))

    def test_prepared_model_takes_the_weights_of_a_saved_model_of_its_architecture_only(self, tmp_path):
        train, _ = block_data()
        config = NCFConfig(kind="neumf", **TINY)
        trained = self.make_model(config, tiny_train_config(epochs=2)).fit(train)
        trained.save(tmp_path / "m")
        users = np.arange(N_USERS)
        prepared = self.make_model(config).prepare_scoring(N_USERS, N_ITEMS)
        assert not np.array_equal(prepared.score_users(users), trained.score_users(users))
        assert prepared.load_weights(tmp_path / "m")
        np.testing.assert_array_equal(prepared.score_users(users), trained.score_users(users))

        for other, sizes in (
            (NCFConfig(kind="neumf", **{**TINY, "factors": TINY["factors"] + 1}), (N_USERS, N_ITEMS)),
            (NCFConfig(kind="gmf", **TINY), (N_USERS, N_ITEMS)),
            (config, (N_USERS + 1, N_ITEMS)),
        ):
            model = self.make_model(other).prepare_scoring(*sizes)
            before = model.get_params()
            assert not model.load_weights(tmp_path / "m")
            for name, value in model.get_params().items():
                np.testing.assert_array_equal(value, before[name])

    def test_pretraining_starts_neumf_from_the_trained_gmf_and_mlp(self):
        train, _ = block_data()
        config = NCFConfig(kind="neumf", **TINY)
        train_config = tiny_train_config(
            epochs=4,
            pretrain=True,
            finetune_learning_rate=0.005,
            weight_decay=0.1,
            finetune_weight_decay=0.3,
            gmf={**NEUTRAL_TOWER, "batch_size": 60, "lr_schedule": "cosine"},
            mlp={**NEUTRAL_TOWER, "num_negatives": 2, "epochs": 3},
            pretrain_alpha=0.7,
        )
        model = self.make_model(config, train_config).fit(train)
        gmf, mlp = model.pretrained_["gmf"], model.pretrained_["mlp"]
        assert gmf.config.kind == "gmf" and mlp.config.kind == "mlp"
        assert gmf.train_config.learning_rate == 0.02 and model.train_config.learning_rate == 0.005
        assert mlp.train_config.weight_decay == 0.1 and model.train_config.weight_decay == 0.3
        # each tower's own settings, the rest as the NeuMF run
        assert (gmf.train_config.batch_size, gmf.train_config.lr_schedule) == (60, "cosine")
        assert (mlp.train_config.batch_size, mlp.train_config.lr_schedule) == (120, "constant")
        assert (gmf.train_config.num_negatives, mlp.train_config.num_negatives) == (4, 2)
        assert (len(gmf.history_), len(mlp.history_), len(model.history_)) == (4, 3, 4)
        assert (model.train_config.batch_size, model.train_config.num_negatives) == (120, 4)
        assert model.train_config.lr_schedule == "constant"
        refit = model.refit(train)  # the towers refit with their own settings too
        assert refit.pretrained_["gmf"].train_config.batch_size == 60
        assert refit.pretrained_["mlp"].train_config.num_negatives == 2
        assert len(refit.pretrained_["mlp"].history_) == 3
        assert all(refit.pretrained_[kind] is not model.pretrained_[kind] for kind in TOWERS)
        # keep_towers: a kept tower is the selection run's own, and the fused start is built from it
        with pytest.raises(ValueError, match="keep_towers"):
            model.refit(train, keep_towers=("mpl",))
        kept = model.refit(train, keep_towers=("mlp",))
        assert kept.pretrained_["mlp"] is mlp and kept.pretrained_["gmf"] is not gmf
        kept_start = fuse_pretrained(kept.pretrained_["gmf"].get_params(), mlp.get_params(), alpha=0.7)
        for name, value in kept.init_params.items():
            np.testing.assert_array_equal(value, kept_start[name])
        g, m = gmf.get_params(), mlp.get_params()
        for name, value in model.init_params.items():
            np.testing.assert_array_equal(value, fuse_pretrained(g, m, alpha=0.7)[name])
        # A NeuMF holding the fused weights predicts the alpha-weighted mean of the two logits.
        start = self.make_model(config)
        start.build(N_USERS, N_ITEMS, fuse_pretrained(g, m, alpha=0.5))
        u, i = np.repeat(np.arange(N_USERS), N_ITEMS), np.tile(np.arange(N_ITEMS), N_USERS)

        def logit(p):
            return np.log(p) - np.log1p(-p)

        expected = 0.5 * logit(gmf.score(u, i).astype(np.float64)) + 0.5 * logit(mlp.score(u, i))
        np.testing.assert_allclose(logit(start.score(u, i).astype(np.float64)), expected, atol=2e-3)
        # Pretrained GMF and MLP learned something, so their weights are not the fresh initialisation.
        fresh = init_params(config, N_USERS, N_ITEMS, seed=3)
        assert not np.allclose(model.init_params["gmf/item_embedding"], fresh["gmf/item_embedding"])

    def test_refit_of_a_model_whose_start_was_its_best_checkpoint_is_that_start(self):
        train, _ = block_data()
        config = NCFConfig(kind="neumf", **TINY)
        start = init_params(config, N_USERS, N_ITEMS, seed=7)
        model = engine_class(self.engine)(config, tiny_train_config(epochs=2), init_params=start).fit(train)
        model.best_epoch_ = 0  # as when the trainer kept the scored start (epoch 0)
        refit = model.refit(train)
        assert refit.best_epoch_ == 0 and refit.history_ == []
        for name, value in refit.get_params().items():
            np.testing.assert_array_equal(value, start[name])
        model.best_epoch_ = 1  # otherwise a warm-started refit trains from that same start
        assert refit.init_params is start and model.refit(train).init_params is start

    def test_training_is_reproducible_with_a_seed(self):
        train, _ = block_data()
        config = NCFConfig(kind="neumf", dropout=0.2, **TINY)
        a = self.make_model(config, tiny_train_config(epochs=3)).fit(train).get_params()
        b = self.make_model(config, tiny_train_config(epochs=3)).fit(train).get_params()
        c = self.make_model(config, tiny_train_config(epochs=3, seed=4)).fit(train).get_params()
        for name in a:
            np.testing.assert_allclose(a[name], b[name], rtol=1e-5, atol=1e-7)
        assert not np.allclose(a["gmf/user_embedding"], c["gmf/user_embedding"])
