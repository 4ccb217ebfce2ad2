"""eALS: the objective against a direct dense computation, monotone decrease, exact coordinate minima."""

import numpy as np
import pytest

from model.data.interactions import Interactions
from model.eals import EALS, missing_weights


def _tiny(seed: int = 0) -> tuple[Interactions, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = (rng.random((8, 6)) < 0.4).astype(np.float64)
    x[0, 0] = 1.0
    users, items = np.nonzero(x)
    return Interactions(users.astype(np.int32), items.astype(np.int32), 8, 6), x


def _dense_loss(model: EALS, x: np.ndarray) -> float:
    """Slow reference: every cell, weight w if observed else c_i, target x."""
    p, q = model.p_.T, model.q_.T
    weights = np.where(x > 0, model.weight, model.c_[None, :])
    return float(np.sum(weights * (x - p @ q.T) ** 2) + model.regularization * (np.sum(p**2) + np.sum(q**2)))


def test_missing_weights_follow_popularity():
    c = missing_weights(np.array([4, 1, 0, 9]), c0=10.0, alpha=0.5)
    f = np.array([2.0, 1.0, 0.0, 3.0])
    np.testing.assert_allclose(c, 10.0 * f / 6.0)


@pytest.mark.parametrize("alpha", [0.0, 0.4])
def test_loss_matches_the_dense_objective_and_decreases(alpha):
    train, x = _tiny()
    model = EALS(factors=3, c0=4.0, alpha=alpha, regularization=0.05, iterations=8, init_std=0.1).fit(train)
    np.testing.assert_allclose(model.loss(), _dense_loss(model, x), rtol=1e-10)
    history = np.array(model.loss_history_)
    assert history.shape == (9,)
    assert np.all(np.diff(history) <= 1e-9 * history[:-1])
    assert history[-1] < 0.5 * history[0]


def test_each_coordinate_update_is_the_exact_minimiser():
    train, x = _tiny(1)
    model = EALS(factors=3, c0=4.0, regularization=0.05, iterations=2, init_std=0.1).fit(train)

    def gradient(p, q):
        weights = np.where(x > 0, model.weight, model.c_[None, :])
        resid = weights * (p @ q.T - x)
        return 2 * resid @ q + 2 * model.regularization * p, 2 * resid.T @ p + 2 * model.regularization * q

    model.update_users()  # the last coordinate is updated last, all others fixed: its gradient is zero
    grad_p, _ = gradient(model.p_.T, model.q_.T)
    np.testing.assert_allclose(grad_p[:, -1], 0.0, atol=1e-10)
    model.update_items()
    _, grad_q = gradient(model.p_.T, model.q_.T)
    np.testing.assert_allclose(grad_q[:, -1], 0.0, atol=1e-10)
    np.testing.assert_allclose(model.loss(), _dense_loss(model, x), rtol=1e-10)


def test_cached_predictions_stay_equal_to_the_factor_products():
    train, _ = _tiny(2)
    model = EALS(factors=4, iterations=3, init_std=0.1).fit(train)
    scores = model.score(model.users_, model.items_).astype(np.float64)
    np.testing.assert_allclose(model.pred_, scores, rtol=1e-5, atol=1e-6)
