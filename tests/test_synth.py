"""Synthetic MovieLens-shaped data: exact sizes, the loader reads it, skew, distinct pairs, time order."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from model.data import DataLoader
from model.data.synth import GENRES, NO_GENRES, SHAPES, Shape, distinct_movies, user_activity, write_synthetic

TINY = Shape("tiny", 400, 600, 30_000, True, 789_652_009, 1_574_327_703, 2_000)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return write_synthetic(TINY, tmp_path_factory.mktemp("synth") / "tiny", seed=3)


def test_shapes_are_the_real_releases():
    sizes = {name: (s.n_ratings, s.n_users, s.n_movies) for name, s in SHAPES.items()}
    assert sizes == {
        "ml-1m": (1_000_209, 6_040, 3_706),
        "ml-10m": (10_000_054, 69_878, 10_677),
        "ml-20m": (20_000_263, 138_493, 26_744),
        "ml-25m": (25_000_095, 162_541, 59_047),
    }
    assert [s.half_stars for s in SHAPES.values()] == [False, True, True, True]


def test_loader_reads_the_exact_shape(tiny_dir):
    ds = DataLoader(tiny_dir).load()
    assert (ds.format, ds.n_users, ds.n_items, ds.n_interactions) == ("csv", 400, 600, 30_000)
    assert ds.user_ids.tolist() == list(range(1, 401))
    assert ds.item_ids.min() >= 1 and ds.item_ids.max() <= 2_000
    assert np.bincount(ds.user_idx).min() >= 20
    assert (tiny_dir / "README.txt").read_text().count("never for accuracy") == 1


def test_ratings_file_rows(tiny_dir):
    ratings = pd.read_csv(tiny_dir / "ratings.csv")
    assert list(ratings.columns) == ["userId", "movieId", "rating", "timestamp"]
    assert not ratings.duplicated(["userId", "movieId"]).any()
    assert set(ratings["rating"].unique()) <= set(np.arange(1, 11) / 2)
    assert ratings["rating"].nunique() == 10
    # users in file order, each user's timestamps strictly increasing, within the time range
    same_user = ratings["userId"].diff().eq(0)
    assert ratings["userId"].is_monotonic_increasing
    assert (ratings["timestamp"].diff()[same_user] > 0).all()
    assert ratings["timestamp"].between(TINY.first_timestamp, TINY.last_timestamp).all()


def test_movies_file(tiny_dir):
    movies = pd.read_csv(tiny_dir / "movies.csv")
    assert list(movies.columns) == ["movieId", "title", "genres"] and len(movies) == 600
    assert movies["movieId"].is_monotonic_increasing and movies["movieId"].is_unique
    assert movies["title"].str.fullmatch(r"Synthetic Movie \d+ \(\d{4}\)").all()
    genres = set("|".join(movies["genres"]).split("|"))
    assert genres <= {*GENRES, NO_GENRES} and len(genres) > 10
    ds = DataLoader(tiny_dir).load()
    assert sorted(ds.movies["movie_id"]) == ds.item_ids.tolist()  # every listed movie is rated


def test_popularity_and_activity_are_skewed(tiny_dir):
    ds = DataLoader(tiny_dir).load()
    per_movie = np.sort(np.bincount(ds.item_idx))[::-1]
    assert per_movie[:60].sum() > 0.3 * ds.n_interactions  # the top 10% of movies
    per_user = np.bincount(ds.user_idx)
    assert per_user.max() > 3 * np.median(per_user)


def test_same_seed_same_bytes(tiny_dir, tmp_path):
    again = write_synthetic(TINY, tmp_path / "again", seed=3)
    other = write_synthetic(TINY, tmp_path / "other", seed=4)
    for name in ("ratings.csv", "movies.csv"):
        assert (again / name).read_bytes() == (tiny_dir / name).read_bytes()
        assert (other / name).read_bytes() != (tiny_dir / name).read_bytes()
    assert sorted(p.name for p in again.iterdir()) == ["README.txt", "movies.csv", "ratings.csv"]


def test_whole_star_shape(tmp_path):
    shape = Shape("tiny-1m", 50, 80, 2_000, False, 956_703_932, 1_046_454_590, 100)
    ratings = pd.read_csv(write_synthetic(shape, tmp_path) / "ratings.csv")
    assert set(ratings["rating"].unique()) == {1, 2, 3, 4, 5}


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_user_activity_sums_exactly(name):
    shape = SHAPES[name]
    counts = user_activity(shape, np.random.default_rng(0))
    assert counts.shape == (shape.n_users,) and counts.sum() == shape.n_ratings
    assert counts.min() >= 20 and counts.max() <= shape.n_movies // 2
    assert np.median(counts) < 0.8 * counts.mean()  # log-normal: a long right tail


def test_distinct_movies_keeps_the_fixed_pairs():
    rng = np.random.default_rng(0)
    weights = 1.0 / np.arange(1, 101)
    cdf = np.cumsum(weights / weights.sum())
    counts = np.array([20, 50, 90, 20])
    users, movies = distinct_movies(
        counts, np.array([0, 2, 2]), np.array([99, 98, 97]), cdf, np.arange(100), rng
    )
    assert np.bincount(users).tolist() == counts.tolist()
    assert len(set(zip(users.tolist(), movies.tolist(), strict=True))) == counts.sum()
    pairs = set(zip(users.tolist(), movies.tolist(), strict=True))
    assert {(0, 99), (2, 98), (2, 97)} <= pairs


def test_unknown_shape():
    with pytest.raises(ValueError, match="unknown shape"):
        write_synthetic("ml-30m", "unused")


def test_synth_data_command_writes_a_loadable_set(tmp_path):
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "batch", "synth-data", "--shape", "ml-1m", "--dest", str(tmp_path / "s")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(tmp_path / "s")
    assert DataLoader(tmp_path / "s").load().n_interactions == 1_000_209
