"""Metrics against hand-computed numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from model.metrics import (
    full_rank,
    hit_rate,
    hit_rate_at,
    hits_at,
    mrr,
    ndcg,
    ndcg_at,
    ndcg_gains_at,
    positive_rank,
    recall_at,
    recalls_at,
    reciprocal_ranks,
)


def test_ranks_by_hand():
    scores = np.array(
        [
            [0.9, 0.1, 0.2, 0.3],  # best: rank 0
            [0.5, 0.6, 0.1, 0.7],  # two above: rank 2
            [0.5, 0.5, 0.1, 0.2],  # a tie counts against the model: rank 1
            [np.nan, 0.1, 0.2, 0.3],  # NaN positive: worst, rank 3
            [0.5, np.nan, 0.1, 0.2],  # NaN negative counts against: rank 1
        ]
    )
    np.testing.assert_array_equal(positive_rank(scores), [0, 2, 1, 3, 1])


def test_hr_and_ndcg_by_hand():
    scores = np.array([[0.9, 0.1, 0.2, 0.3], [0.5, 0.6, 0.1, 0.7], [0.1, 0.6, 0.5, 0.7]])
    # ranks 0, 2, 3; k = 3 -> hits for the first two
    assert hit_rate(scores, k=3) == pytest.approx(2 / 3)
    assert ndcg(scores, k=3) == pytest.approx((1.0 + 1.0 / math.log2(4)) / 3)
    assert hit_rate(scores, k=1) == pytest.approx(1 / 3)
    assert ndcg(scores, k=1) == pytest.approx(1 / 3)


def test_recall_and_mrr_by_hand():
    ranks = np.array([0, 4, 19, 20, 99])
    # Recall@20 with one held-out item: in the top 20 for ranks 0, 4 and 19 -> 3 of 5.
    assert recall_at(ranks, 20) == pytest.approx(3 / 5)
    np.testing.assert_array_equal(recalls_at(ranks, 20), [1.0, 1.0, 1.0, 0.0, 0.0])
    np.testing.assert_array_equal(recalls_at(ranks, 20), hits_at(ranks, 20))  # leave-one-out: hit@20
    # MRR over the whole ranking: 1/1, 1/5, 1/20, 1/21, 1/100.
    assert mrr(ranks) == pytest.approx((1 + 0.2 + 0.05 + 1 / 21 + 0.01) / 5)
    np.testing.assert_allclose(reciprocal_ranks(ranks), [1.0, 0.2, 0.05, 1 / 21, 0.01])
    assert math.isnan(mrr(np.array([], dtype=np.int64)))


def test_per_user_arrays_average_to_the_figures():
    ranks = np.random.default_rng(1).integers(0, 200, size=300)
    for values in (hits_at(ranks, 10), ndcg_gains_at(ranks, 10), reciprocal_ranks(ranks)):
        assert values.shape == (300,) and values.dtype == np.float64
    assert hits_at(ranks, 10).mean() == hit_rate_at(ranks, 10)
    assert ndcg_gains_at(ranks, 10).mean() == ndcg_at(ranks, 10)
    assert ndcg_gains_at(np.array([1]), 10)[0] == pytest.approx(1 / math.log2(3))


def test_ndcg_never_exceeds_hr():
    rng = np.random.default_rng(0)
    ranks = rng.integers(0, 100, size=1000)
    for k in (1, 5, 10, 50):
        assert ndcg_at(ranks, k) <= hit_rate_at(ranks, k)
    assert ndcg_at(np.array([0]), 10) == 1.0


def test_full_rank_excludes_known_items():
    scores = np.array([[0.1, 0.9, 0.5, 0.8, 0.3]])
    excluded = np.array([[False, True, False, False, False]])
    # target item 2 (0.5): 0.9 excluded, 0.8 above -> rank 1
    np.testing.assert_array_equal(full_rank(scores, np.array([2]), excluded), [1])
    # the target's own exclusion flag does not matter
    excluded[0, 2] = True
    np.testing.assert_array_equal(full_rank(scores, np.array([2]), excluded), [1])


def test_bad_shape():
    with pytest.raises(ValueError):
        positive_rank(np.zeros(3))
