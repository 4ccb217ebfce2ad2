"""Metrics against hand-computed numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from model.metrics import full_rank, hit_rate, hit_rate_at, ndcg, ndcg_at, positive_rank


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
