"""Recency weighting in iALS, eALS and EASE^R (`recent_fraction`, `recent_weight`): off, they fit exactly
what they fitted before; on, they fit the weighted matrix, and it changes what they recommend."""

import numpy as np
import pytest
import scipy.sparse as sp
from implicit.cpu.als import AlternatingLeastSquares
from threadpoolctl import threadpool_limits

from model.als import IALS
from model.data.interactions import Interactions
from model.eals import EALS
from model.ease import EASE, ease_weights

N_USERS, N_ITEMS, PER_USER = 12, 9, 4


def _toy() -> tuple[Interactions, np.ndarray, np.ndarray]:
    """Each user has 4 distinct items, oldest first; returns (train, binary X, X with the newest 2 of each
    user at 3), i.e. the matrices for recent_fraction 0.5, recent_weight 3, written out by hand."""
    rng = np.random.default_rng(0)
    users, items = [], []
    x = np.zeros((N_USERS, N_ITEMS))
    xw = np.zeros((N_USERS, N_ITEMS))
    for u in range(N_USERS):
        seen = rng.choice(N_ITEMS, size=PER_USER, replace=False)
        users += [u] * PER_USER
        items += list(seen)
        x[u, seen] = 1.0
        xw[u, seen] = [1.0, 1.0, 3.0, 3.0]
    return Interactions(np.array(users, np.int32), np.array(items, np.int32), N_USERS, N_ITEMS), x, xw


def _ials(**kw) -> IALS:
    return IALS(factors=3, regularization=0.1, alpha=2.0, iterations=5, num_threads=1, **kw)


def _implicit_factors(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with threadpool_limits(1, "blas"):
        als = AlternatingLeastSquares(
            factors=3, regularization=0.1, alpha=2.0, iterations=5, random_state=0, num_threads=1
        )
        als.fit(sp.csr_matrix(matrix.astype(np.float32)), show_progress=False)
    return np.asarray(als.user_factors), np.asarray(als.item_factors)


@pytest.mark.parametrize("fraction, weight", [(0.0, 1.0), (0.0, 3.0), (0.5, 1.0)])
def test_weighting_off_gives_the_unweighted_models_bit_for_bit(fraction, weight):
    train, x, _ = _toy()
    ease = EASE(l2=2.0, recent_fraction=fraction, recent_weight=weight).fit(train)
    np.testing.assert_array_equal(ease.weights_, ease_weights(x.T @ x, 2.0).astype(np.float32))
    np.testing.assert_array_equal(ease.train_.toarray(), x)
    users, items = _implicit_factors(x)
    ials = _ials(recent_fraction=fraction, recent_weight=weight).fit(train)
    np.testing.assert_array_equal(ials.user_factors_, users)
    np.testing.assert_array_equal(ials.item_factors_, items)
    eals = EALS(factors=2, iterations=3, init_std=0.1, recent_fraction=fraction, recent_weight=weight)
    plain = EALS(factors=2, iterations=3, init_std=0.1).fit(train)
    np.testing.assert_array_equal(eals.fit(train).user_factors_, plain.user_factors_)
    assert eals.loss_history_ == plain.loss_history_


def test_ease_fits_and_scores_the_weighted_matrix():
    train, x, xw = _toy()
    model = EASE(l2=2.0, recent_fraction=0.5, recent_weight=3.0).fit(train)
    weights = ease_weights(xw.T @ xw, 2.0)
    np.testing.assert_allclose(model.weights_, weights, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.score_users(np.arange(N_USERS)), xw @ weights, rtol=1e-5, atol=1e-5)
    assert not np.allclose(weights, ease_weights(x.T @ x, 2.0), atol=1e-3)


def test_ease_top_item_flips_toward_the_recent_co_occurrence():
    # Items A=0, B=1, D=2, E=3. Three users saw A then D, two saw B then E; the last user saw A, then B.
    # Unweighted, A's stronger link wins (D); with the newest half at weight 3, B's link wins (E).
    rows = [[0, 2]] * 3 + [[1, 3]] * 2 + [[0, 1]]
    users = np.repeat(np.arange(len(rows)), 2).astype(np.int32)
    train = Interactions(users, np.array(rows, np.int32).ravel(), len(rows), 4)
    last = np.array([len(rows) - 1])
    plain = EASE(l2=1.0, recent_fraction=0.0).fit(train).score_users(last)[0]
    recent = EASE(l2=1.0, recent_fraction=0.5, recent_weight=3.0).fit(train).score_users(last)[0]
    assert plain[2] > plain[3]
    assert recent[3] > recent[2]


def test_ials_fits_the_weighted_confidences():
    train, x, xw = _toy()
    model = _ials(recent_fraction=0.5, recent_weight=3.0).fit(train)
    users, items = _implicit_factors(xw)
    np.testing.assert_array_equal(model.user_factors_, users)
    np.testing.assert_array_equal(model.item_factors_, items)
    assert not np.allclose(users, _implicit_factors(x)[0], atol=1e-3)


def test_eals_objective_uses_the_weighted_observed_pairs():
    train, x, xw = _toy()
    model = EALS(
        factors=3,
        c0=4.0,
        weight=2.0,
        regularization=0.05,
        iterations=6,
        init_std=0.1,
        recent_fraction=0.5,
        recent_weight=3.0,
    ).fit(train)
    p, q = model.p_.T, model.q_.T
    cell_weights = np.where(x > 0, 2.0 * xw, model.c_[None, :])
    dense = np.sum(cell_weights * (x - p @ q.T) ** 2) + 0.05 * (np.sum(p**2) + np.sum(q**2))
    np.testing.assert_allclose(model.loss(), dense, rtol=1e-10)
    history = np.array(model.loss_history_)
    assert np.all(np.diff(history) <= 1e-9 * history[:-1])
