"""Beyond-accuracy figures and drift (`batch.beyond_accuracy`) against hand-computed values."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from batch.beyond_accuracy import gini, intra_list_diversity, top_k_matrix


def test_top_k_matrix_pads_short_lists():
    offsets = np.array([0, 3, 4, 4 + 0])
    values = np.array([7, 8, 9, 5])
    assert top_k_matrix(offsets, values, 2, -1).tolist() == [[7, 8], [5, -1], [-1, -1]]


def test_gini_of_equal_and_concentrated_counts():
    assert gini(np.array([3, 3, 3, 3])) == 0.0
    assert gini(np.array([0, 0, 0, 12])) == pytest.approx(0.75)  # (n - 1) / n for one movie
    assert gini(np.zeros(4)) == 0.0


def test_intra_list_diversity_is_the_mean_pairwise_jaccard_distance():
    genres = np.array(
        [
            [1, 0, 0],  # 0: A
            [1, 1, 0],  # 1: A B
            [0, 0, 1],  # 2: C
            [0, 0, 0],  # 3: none
        ],
        dtype=bool,
    )
    lists = np.array([[0, 1, 2], [0, 0, -1], [3, 3, -1], [2, -1, -1]])
    # user 0: d(0,1) = 1 - 1/2, d(0,2) = 1, d(1,2) = 1 -> 2.5 / 3; user 1: 0; user 2: no genres -> 0;
    # user 3: a single movie has no pairs and is left out
    assert intra_list_diversity(lists, genres) == pytest.approx((2.5 / 3) / 3)


def write_run_files(run, users, lists, movie_ids, genres):
    """A staged run's served arrays (from (user, list) pairs) and movies.parquet."""
    import pyarrow.parquet as pq

    from batch.serving_arrays import MOVIE_POS, OFFSETS, SERVING_DIR, USER_IDS

    (run / SERVING_DIR).mkdir(parents=True)
    sorted_ids = np.sort(movie_ids)
    flat = np.concatenate([np.searchsorted(sorted_ids, lst) for lst in lists]).astype(np.int32)
    np.save(run / USER_IDS, np.asarray(users, dtype=np.int64))
    np.save(run / OFFSETS, np.concatenate([[0], np.cumsum([len(x) for x in lists])]).astype(np.int64))
    np.save(run / MOVIE_POS, flat)
    pq.write_table(
        pa.table({"movie_id": pa.array(movie_ids, pa.int32()), "genres": genres}), run / "movies.parquet"
    )


def test_beyond_accuracy_figures_of_a_small_run(tmp_path):
    from batch.beyond_accuracy import beyond_accuracy

    movie_ids = np.array([10, 20, 30, 40])
    write_run_files(tmp_path, [1, 2], [[10, 20], [10, 30]], movie_ids, [["A"], ["A", "B"], ["C"], []])
    counts = np.array([4, 2, 1, 1])  # interactions per catalogue movie (ids 10..40)
    figures = beyond_accuracy(tmp_path, movie_ids, counts, n_users=4, top_n=2, k=2)
    assert figures["coverage"] == pytest.approx(3 / 4)
    assert figures["gini"] == pytest.approx(gini(np.array([2, 1, 1, 0])))
    # popularity ranks: 10 -> 1, 20 -> 2, 30 -> 3 (ties by id), 40 -> 4
    assert figures["mean_popularity_rank"] == pytest.approx((1 + 2 + 1 + 3) / 4)
    assert figures["novelty"] == pytest.approx(np.mean(-np.log2([1, 0.5, 1, 0.25])))
    assert figures["intra_list_diversity"] == pytest.approx((0.5 + 1.0) / 2)


def test_drift_against_the_latest_run(tmp_path):
    from batch.beyond_accuracy import drift
    from batch.contract import RECOMMENDATIONS, RunWriter

    output = tmp_path / "output"
    previous = RunWriter(output)
    previous.write_table(
        RECOMMENDATIONS,
        pa.table(
            {
                "user_id": [1, 1, 2, 2, 3],
                "rank": [1, 2, 1, 2, 1],
                "movie_id": [10, 20, 10, 30, 40],
                "score": [1.0, 0.5, 1.0, 0.5, 1.0],
            }
        ),
    )
    previous.publish(code_version="t", top_n=2)
    run = tmp_path / "new"
    movie_ids = np.array([10, 20, 30, 40])
    write_run_files(run, [1, 2, 4], [[10, 20], [30, 20], [40]], movie_ids, [[], [], [], []])
    result = drift(run, output, k=2)
    assert result["previous_run"] == previous.run_id
    assert result["users_compared"] == 2 and result["new_users"] == 1 and result["gone_users"] == 1
    assert result["mean_overlap"] == pytest.approx((2 / 2 + 1 / 2) / 2)
    assert result["changed_share"] == pytest.approx(0.5)
    assert drift(run, tmp_path / "nothing-published")["previous_run"] is None
