"""The evaluator: batched scoring, both protocols, hand-checkable models."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from model.base import Recommender
from model.baselines import ItemPop, RandomModel
from model.data import DataLoader, leave_one_out
from model.evaluation import Evaluator
from model.metrics import full_rank


class Oracle(Recommender):
    """Scores the user's held-out item 1, everything else 0 (or worse): a perfect model."""

    def __init__(self, held, worst=False):
        self.target = dict(zip(held.user_idx.tolist(), held.item_idx.tolist(), strict=True))
        self.worst = worst
        self.calls = 0

    def fit(self, train, validation=None):
        self.n_users, self.n_items = train.n_users, train.n_items
        return self

    def score(self, user_idx, item_idx):
        self.calls += 1
        hit = np.array(
            [self.target.get(u) == i for u, i in zip(user_idx.tolist(), item_idx.tolist(), strict=True)]
        )
        return np.where(hit, -1.0 if self.worst else 1.0, 0.0).astype(np.float32)


@pytest.fixture
def split(fixtures_dir):
    return leave_one_out(DataLoader(fixtures_dir / "dat").load(), seed=0, n_negatives=2)


def test_perfect_and_hopeless_models(split):
    evaluator = Evaluator(split, k=1)
    best = Oracle(split.test).fit(split.train)
    result = evaluator.evaluate(best, "test")
    assert result["sampled"]["hr@1"] == 1.0 and result["sampled"]["ndcg@1"] == 1.0
    assert result["full"]["hr@1"] == 1.0
    worst = evaluator.evaluate(Oracle(split.test, worst=True).fit(split.train), "test")
    assert worst["sampled"]["hr@1"] == 0.0 and worst["full"]["hr@1"] == 0.0


def test_sampled_protocol_scores_many_users_per_call(split):
    model = Oracle(split.validation).fit(split.train)
    Evaluator(split, protocols=("sampled",)).evaluate(model, "validation")
    assert model.calls == 1


def test_itempop_by_hand(split):
    model = ItemPop().fit(split.train)
    ranks = Evaluator(split).sampled_ranks(model, split.test)
    pop = np.bincount(split.train.item_idx, minlength=split.n_items)
    cand = split.test.candidates
    expected = (pop[cand[:, 1:]] >= pop[cand[:, :1]]).sum(axis=1)
    np.testing.assert_array_equal(ranks, expected)


def test_full_ranking_excludes_known_items(split):
    model = ItemPop().fit(split.train)
    ranks = Evaluator(split).full_ranks(model, split.test)
    pop = np.bincount(split.train.item_idx, minlength=split.n_items).astype(float)
    known = split.known.toarray().astype(bool)
    for j, (u, i) in enumerate(zip(split.test.user_idx, split.test.item_idx, strict=True)):
        others = ~known[u]
        assert ranks[j] == int((pop[others] >= pop[i]).sum())


def test_full_ranking_recall_and_mrr_by_hand(split):
    """The perfect model ranks every held-out item first; the hopeless one last among the unrated items,
    whose count per user is known: n_items - (rated items, the held-out one included)."""
    evaluator = Evaluator(split, protocols=("full",), recall_k=20)
    best = evaluator.evaluate(Oracle(split.test).fit(split.train), "test")["full"]
    assert best["recall@20"] == 1.0 and best["mrr"] == 1.0
    worst = evaluator.evaluate(Oracle(split.test, worst=True).fit(split.train), "test")["full"]
    rated = np.diff(split.known.indptr)[split.test.user_idx]
    last = split.n_items - rated  # 0-based rank of the held-out item below every unrated one
    assert worst["mrr"] == pytest.approx(np.mean(1.0 / (last + 1)))
    assert worst["recall@20"] == pytest.approx(np.mean(last < 20))
    assert set(worst) == {"hr@10", "ndcg@10", "recall@20", "mrr", "seconds"}


def test_per_user_arrays_come_from_the_same_pass_and_average_to_the_figures(split):
    model = ItemPop().fit(split.train)
    calls = {"score": 0}
    original = model.score

    def counted(users, items):
        calls["score"] += 1
        return original(users, items)

    model.score = counted
    evaluator = Evaluator(split)
    figures = evaluator.evaluate(model, "test")
    one_pass = calls["score"]
    again, per_user = evaluator.evaluate_per_user(model, "test")
    assert calls["score"] == 2 * one_pass  # no second scoring pass for the per-user arrays
    assert set(per_user) == {"sampled", "full"}
    assert set(per_user["full"]) == {"hr@10", "ndcg@10", "recall@20", "mrr"}
    assert set(per_user["sampled"]) == {"hr@10", "ndcg@10"}
    for protocol, metrics in per_user.items():
        for name, values in metrics.items():
            assert values.shape == (len(split.test),) and values.dtype == np.float64
            assert values.mean() == figures[protocol][name] == again[protocol][name]
    ranks = evaluator.full_ranks(ItemPop().fit(split.train), split.test)
    np.testing.assert_array_equal(per_user["full"]["mrr"], 1.0 / (ranks + 1))
    assert 0 < figures["full"]["mrr"] < 1


def test_random_is_deterministic_and_near_chance(split):
    model = RandomModel(seed=1).fit(split.train)
    u, i = np.array([0, 1, 2]), np.array([3, 4, 5])
    np.testing.assert_array_equal(model.score(u, i), model.score(u, i))
    many = model.score(np.repeat(np.arange(100), 100), np.tile(np.arange(100), 100))
    assert 0.45 < many.mean() < 0.55 and many.min() >= 0 and many.max() < 1


def test_bad_protocol(split):
    with pytest.raises(ValueError):
        Evaluator(split, protocols=("loo",))
    with pytest.raises(ValueError):
        Evaluator(split).evaluate(ItemPop().fit(split.train), "train")


@pytest.mark.slow
def test_itempop_ml1m_near_published(ml1m_dir):
    split = leave_one_out(DataLoader(ml1m_dir).load(), seed=0)
    result = Evaluator(split).evaluate(ItemPop().fit(split.train), "test")
    # Published on the NCF authors' split: HR@10 0.4533, NDCG@10 0.2542 (our split is a fresh one).
    assert result["sampled"]["hr@10"] == pytest.approx(0.4533, abs=0.02)
    assert result["sampled"]["ndcg@10"] == pytest.approx(0.2542, abs=0.02)
    assert result["full"]["hr@10"] < result["sampled"]["hr@10"]
    chance = Evaluator(split, protocols=("sampled",)).evaluate(RandomModel().fit(split.train), "test")
    assert chance["sampled"]["hr@10"] == pytest.approx(0.10, abs=0.015)


class FixedScores(Recommender):
    """Scores from a fixed (n_users, n_items) matrix."""

    def __init__(self, scores):
        self.scores = np.asarray(scores, dtype=np.float32)
        self.n_users, self.n_items = self.scores.shape

    def fit(self, train, validation=None):
        return self

    def score(self, user_idx, item_idx):
        return self.scores[user_idx, item_idx]


def test_ranks_from_the_scoring_pass_count_ties_and_nan_against_the_model():
    nan, inf = np.nan, np.inf
    scores = [
        [0.5, 0.5, 0.9, 0.1, 0.5],  # ties with the held item (0) count; the rated 0.9 does not
        [nan, 0.2, 0.3, 0.1, 0.0],  # a NaN held item: every unrated item counts against it
        [0.4, nan, 0.3, 0.9, 0.4],  # a NaN competitor counts; the rated 0.9 does not
        [-inf, 0.1, 0.2, 0.3, 0.4],  # a -inf held item: every unrated item counts
    ]
    rated = sp.csr_matrix(np.array([[1, 0, 1, 0, 0], [1, 0, 0, 0, 0], [1, 0, 0, 1, 0], [1, 0, 0, 0, 0]]))
    model = FixedScores(scores)
    users = np.arange(4)
    _, _, _, ranks = model.recommend_and_rank(users, 2, rated, np.zeros(4, dtype=np.int64))
    np.testing.assert_array_equal(ranks, [2, 4, 2, 4])
    expected = full_rank(np.array(scores, dtype=np.float32), np.zeros(4, dtype=int), rated.toarray() > 0)
    np.testing.assert_array_equal(ranks, expected)
