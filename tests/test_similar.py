"""Similar movies and recent history as the job computes them (`batch.similar`): against brute force."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from batch.similar import cosine_top_k, history_table, item_vectors, similar_movies_batches
from model.data.interactions import Interactions


def random_interactions(seed: int = 0, n_users: int = 50, n_items: int = 30) -> Interactions:
    rng = np.random.default_rng(seed)
    dense = rng.random((n_users, n_items)) < np.linspace(0.5, 0.02, n_items)  # popular ones first
    dense[:, -1] = False  # a movie nobody rated: no neighbours, and nobody's neighbour
    users, items = np.nonzero(dense)
    return Interactions(users.astype(np.int32), items.astype(np.int32), n_users, n_items)


def brute_force(interactions: Interactions, k: int) -> list[list[tuple[int, float]]]:
    x = interactions.to_csr().toarray().astype(np.float64)
    norms = np.sqrt((x * x).sum(axis=0))
    out = []
    for i in range(x.shape[1]):
        sims = []
        for j in range(x.shape[1]):
            if j != i and norms[i] > 0 and norms[j] > 0:
                s = float(x[:, i] @ x[:, j] / (norms[i] * norms[j]))
                if s > 0:
                    sims.append((j, s))
        sims.sort(key=lambda t: (-t[1], t[0]))
        out.append(sims[:k])
    return out


@pytest.mark.parametrize("chunk", [1, 7, 1000])
def test_cosine_top_k_matches_brute_force_for_any_block_size(chunk):
    interactions = random_interactions()
    expected = brute_force(interactions, 5)
    seen = []
    for rows, items, scores in cosine_top_k(item_vectors(interactions), 5, chunk):
        assert items.shape == (len(rows), 5)
        for row, its, scs in zip(rows, items, scores, strict=True):
            real = np.isfinite(scs)
            assert not np.any(real[np.argmin(real) :]) or real.all()  # neighbours first, padding after
            got = [(int(j), float(s)) for j, s in zip(its[real], scs[real], strict=True)]
            # the same best scores (exact ties may be ordered differently after float32 rounding) ...
            assert [s for _, s in got] == pytest.approx([s for _, s in expected[row]], rel=1e-5)
            # ... and each listed movie really has the score it is listed with
            true = dict(brute_force(interactions, interactions.n_items)[row])
            assert [s for _, s in got] == pytest.approx([true[j] for j, _ in got], rel=1e-5)
            assert row not in its[real]
            seen.append(int(row))
    assert seen == list(range(interactions.n_items))


def test_dense_vectors_give_the_same_neighbours_as_sparse():
    vectors = item_vectors(random_interactions(1))
    sparse = list(cosine_top_k(vectors, 4, 8))
    dense = list(cosine_top_k(vectors.toarray(), 4, 8))
    for (r1, i1, s1), (r2, i2, s2) in zip(sparse, dense, strict=True):
        np.testing.assert_array_equal(r1, r2)
        np.testing.assert_array_equal(i1[np.isfinite(s1)], i2[np.isfinite(s2)])


def test_similar_movies_table_has_raw_ids_ranks_and_no_self_or_unrated_movie():
    interactions = random_interactions(2)
    item_ids = np.arange(interactions.n_items, dtype=np.int64) * 10 + 5
    batches = similar_movies_batches(item_vectors(interactions), item_ids, 3, 4)
    frame = pd.concat(t.to_pandas() for t in batches)
    assert (frame.movie_id != frame.similar_movie_id).all()
    assert (frame.score > 0).all()
    lonely = int(item_ids[-1])
    assert lonely not in set(frame.movie_id) and lonely not in set(frame.similar_movie_id)
    for _, group in frame.groupby("movie_id"):
        assert group["rank"].tolist() == list(range(1, len(group) + 1))
        assert np.all(np.diff(group.score.to_numpy()) <= 0)
    assert frame.groupby("movie_id").size().max() == 3


def test_history_is_the_newest_movies_per_user_newest_first():
    class FakeDataset:
        n_users = 3
        user_ids = np.array([10, 20, 30])
        item_ids = np.array([100, 200, 300, 400])
        # rows sorted by user, then time (as DataLoader sorts them)
        user_idx = np.array([0, 0, 0, 1, 2, 2], dtype=np.int32)
        item_idx = np.array([0, 1, 2, 3, 3, 0], dtype=np.int32)
        timestamp = np.array([1, 2, 3, 9, 5, 6], dtype=np.int64)

    table = history_table(FakeDataset(), 2).to_pylist()
    assert table == [
        {"user_id": 10, "rank": 1, "movie_id": 300, "timestamp": 3},
        {"user_id": 10, "rank": 2, "movie_id": 200, "timestamp": 2},
        {"user_id": 20, "rank": 1, "movie_id": 400, "timestamp": 9},
        {"user_id": 30, "rank": 1, "movie_id": 100, "timestamp": 6},
        {"user_id": 30, "rank": 2, "movie_id": 400, "timestamp": 5},
    ]


def test_no_block_is_larger_than_chunk_by_items():
    vectors = sp.random(40, 25, density=0.3, format="csr", random_state=3, dtype=np.float32)
    assert [len(rows) for rows, _, _ in cosine_top_k(vectors, 3, 16)] == [16, 16, 8]
