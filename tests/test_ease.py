"""EASE^R against hand-worked closed forms on tiny matrices."""

import numpy as np
import pytest

from model.data.interactions import Interactions
from model.ease import EASE, ease_weights


def _interactions(x: np.ndarray) -> Interactions:
    users, items = np.nonzero(x)
    return Interactions(users.astype(np.int32), items.astype(np.int32), x.shape[0], x.shape[1])


def test_two_items_match_the_ridge_formula_by_hand():
    # G = XᵀX = [[3, 2], [2, 4]]; with λ = 1, P = inv([[4, 2], [2, 5]]) = [[5, -2], [-2, 4]] / 16.
    # B_01 = -P_01 / P_11 = (2/16) / (4/16) = 0.5 and B_10 = -P_10 / P_00 = (2/16) / (5/16) = 0.4.
    x = np.array([[1, 1], [1, 1], [1, 0], [0, 1], [0, 1]], dtype=np.float64)
    b = ease_weights(x.T @ x, l2=1.0)
    np.testing.assert_allclose(b, [[0.0, 0.5], [0.4, 0.0]], atol=1e-12)


def test_each_column_is_the_ridge_regression_on_the_other_items():
    rng = np.random.default_rng(0)
    x = (rng.random((30, 6)) < 0.4).astype(np.float64)
    l2 = 2.5
    b = ease_weights(x.T @ x, l2)
    assert np.all(np.diag(b) == 0.0)
    for j in range(6):
        others = [i for i in range(6) if i != j]
        a = x[:, others]
        ridge = np.linalg.solve(a.T @ a + l2 * np.eye(5), a.T @ x[:, j])
        np.testing.assert_allclose(b[others, j], ridge, atol=1e-10)


def test_model_scores_are_profile_times_weights_and_pairs_agree_with_rows():
    rng = np.random.default_rng(1)
    x = (rng.random((9, 7)) < 0.5).astype(np.float64)
    model = EASE(l2=3.0, chunk_users=2, recent_fraction=0.0).fit(_interactions(x))
    expected = x @ ease_weights(x.T @ x, 3.0)
    users = np.arange(9)
    np.testing.assert_allclose(model.score_users(users), expected, rtol=1e-5, atol=1e-6)
    pair_users = rng.integers(0, 9, 40)
    pair_items = rng.integers(0, 7, 40)
    scores = model.score(pair_users, pair_items)
    assert scores.dtype == np.float32 and scores.shape == (40,)
    np.testing.assert_allclose(scores, expected[pair_users, pair_items], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("l2", [0.5, 50.0])
def test_weights_are_finite_for_items_without_interactions(l2):
    x = np.array([[1, 0, 0], [1, 1, 0]], dtype=np.float64)
    assert np.all(np.isfinite(ease_weights(x.T @ x, l2)))
