"""ItemKNN: shrunk cosine and top-k neighbours against hand-computed values."""

import numpy as np
import scipy.sparse as sp

from model.data.interactions import Interactions
from model.knn import ItemKNN, keep_top_k, shrunk_cosine

# 4 users x 3 items. Columns: a = [1,1,0,0], b = [1,1,1,0], c = [0,0,1,1].
X = np.array([[1, 1, 0], [1, 1, 0], [0, 1, 1], [0, 0, 1]], dtype=np.float32)


def _interactions(x: np.ndarray) -> Interactions:
    users, items = np.nonzero(x)
    return Interactions(users.astype(np.int32), items.astype(np.int32), x.shape[0], x.shape[1])


def test_shrunk_cosine_by_hand():
    shrink = 2.0
    sim = shrunk_cosine(sp.csr_matrix(X), shrink)
    # a·b = 2, |a| = √2, |b| = √3; b·c = 1, |c| = √2; a·c = 0.
    ab = 2.0 / (np.sqrt(2.0) * np.sqrt(3.0) + shrink)
    bc = 1.0 / (np.sqrt(3.0) * np.sqrt(2.0) + shrink)
    expected = np.array([[0.0, ab, 0.0], [ab, 0.0, bc], [0.0, bc, 0.0]])
    np.testing.assert_allclose(sim, expected, rtol=1e-6)


def test_no_shrink_is_plain_cosine():
    sim = shrunk_cosine(sp.csr_matrix(X), 0.0)
    np.testing.assert_allclose(sim[0, 1], 2.0 / np.sqrt(6.0), rtol=1e-6)


def test_top_k_keeps_the_largest_per_column():
    sim = np.array([[0.0, 0.9, 0.1, 0.3], [0.9, 0.0, 0.5, 0.2], [0.1, 0.5, 0.0, 0.7], [0.3, 0.2, 0.7, 0.0]])
    kept = keep_top_k(sim, 2).toarray()
    expected = np.array(
        [[0.0, 0.9, 0.0, 0.3], [0.9, 0.0, 0.5, 0.0], [0.0, 0.5, 0.0, 0.7], [0.3, 0.0, 0.7, 0.0]]
    )
    np.testing.assert_allclose(kept, expected)


def test_scores_sum_similarities_over_the_profile():
    model = ItemKNN(k=1, shrink=0.0, chunk_users=1).fit(_interactions(X))
    ab = 2.0 / np.sqrt(6.0)
    bc = 1.0 / np.sqrt(6.0)
    # k = 1: column a keeps b (ab), column b keeps a (ab > bc), column c keeps b (bc).
    weights = np.array([[0.0, ab, 0.0], [ab, 0.0, bc], [0.0, 0.0, 0.0]])
    np.testing.assert_allclose(model.weights_.toarray(), weights, rtol=1e-6)
    expected = X @ weights
    np.testing.assert_allclose(model.score_users(np.arange(4)), expected, rtol=1e-6)
    users, items = np.array([3, 0, 2, 0]), np.array([1, 2, 0, 1])
    np.testing.assert_allclose(model.score(users, items), expected[users, items], rtol=1e-6)
