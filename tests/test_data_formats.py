"""Every supported layout parses into the same dense-index dataset; the real copies load with the
published counts."""

from __future__ import annotations

import logging
import shutil

import numpy as np
import pytest

from model.data import DataLoader
from model.data.formats import MOVIE_FILES, detect_format


@pytest.mark.parametrize("layout", ["dat", "csv", "ml100k"])
def test_movielens_layouts_agree(fixtures_dir, layout):
    ds = DataLoader(fixtures_dir / layout).load()
    assert ds.format == layout
    assert ds.n_users == 6
    np.testing.assert_array_equal(ds.user_ids, [1, 2, 5, 9, 12, 40])
    assert ds.n_interactions == 37
    assert ds.user_idx.dtype == np.int32 and ds.item_idx.dtype == np.int32
    # Ids round-trip through the maps, rows are sorted by user then time.
    assert np.all(np.diff(ds.user_idx) >= 0)
    assert np.all(ds.item_ids[ds.item_idx] > 0)
    assert ds.to_user_idx(np.array([40, 3]))[0] == 5 and ds.to_user_idx(np.array([3]))[0] == -1


@pytest.mark.parametrize("layout", ["dat", "csv", "ml100k"])
def test_movie_metadata(fixtures_dir, layout):
    movies = DataLoader(fixtures_dir / layout).load().movies.set_index("movie_id")
    assert movies.loc[73, "title"] == "Misérables, Les (1995)"  # Latin-1 in dat/ml100k, UTF-8 in csv
    assert movies.loc[73, "year"] == 1995
    assert movies.loc[260, "genres"] == ["Action", "Adventure", "Fantasy", "Sci-Fi"]
    # movies.csv writes "(no genres listed)" for this one, which means no genre.
    assert movies.loc[999, "genres"] == ([] if layout == "csv" else ["Drama"])
    assert movies.loc[999, "title"] == "Untitled" and movies["year"].isna().sum() == 1


def test_csv_half_star_ratings_are_kept(fixtures_dir):
    # Every rating is a positive, half stars included (implicit feedback).
    assert DataLoader(fixtures_dir / "csv").load().n_interactions == 37


def test_min_rating_threshold(fixtures_dir):
    full = DataLoader(fixtures_dir / "dat").load()
    high = DataLoader(fixtures_dir / "dat", min_rating=4).load()
    assert 0 < high.n_interactions < full.n_interactions


def test_ncf_layout_keeps_ids_and_fixed_test(fixtures_dir):
    ds = DataLoader(fixtures_dir / "ncf").load()
    assert ds.format == "ncf" and ds.name == "tiny"
    assert ds.n_users == 4 and ds.n_items == 12
    np.testing.assert_array_equal(ds.user_ids, np.arange(4))
    assert ds.fixed_test.negatives.shape == (4, 3)
    assert ds.n_interactions == 4 * 6


def test_detect_format(fixtures_dir):
    assert [detect_format(fixtures_dir / f) for f in ("dat", "csv", "ml100k", "ncf")] == [
        "dat",
        "csv",
        "ml100k",
        "ncf",
    ]


@pytest.mark.parametrize("layout", ["dat", "csv", "ml100k"])
def test_rated_movies_missing_from_the_metadata_are_listed_and_warned_about(
    fixtures_dir, tmp_path, caplog, layout
):
    data = tmp_path / layout
    shutil.copytree(fixtures_dir / layout, data)
    movie_file = data / MOVIE_FILES[layout]
    sep = {"dat": "::", "csv": ",", "ml100k": "|"}[layout]
    encoding = "utf-8" if layout == "csv" else "latin-1"
    lines = movie_file.read_text(encoding=encoding).splitlines(keepends=True)
    kept = [line for line in lines if line.split(sep)[0] not in {"7", "260"}]
    assert len(kept) == len(lines) - 2
    movie_file.write_text("".join(kept), encoding=encoding)
    with caplog.at_level(logging.WARNING, logger="model.data.loader"):
        ds = DataLoader(data).load()
    assert ds.unlisted_movie_ids.tolist() == [7, 260] and ds.unlisted_movie_ids.dtype == np.int64
    assert 7 in ds.item_ids and 7 not in ds.movies["movie_id"].to_numpy()
    warnings = [r.getMessage() for r in caplog.records if r.name == "model.data.loader"]
    expected = f"2 rated movies are missing from {MOVIE_FILES[layout]} (e.g. 7, 260): they have no title"
    assert len(warnings) == 1 and warnings[0].startswith(expected)


@pytest.mark.parametrize("layout", ["dat", "csv", "ml100k", "ncf"])
def test_no_movie_is_unlisted_when_the_metadata_is_complete_or_absent(fixtures_dir, tmp_path, caplog, layout):
    assert DataLoader(fixtures_dir / layout).load().unlisted_movie_ids.tolist() == []
    if layout == "ncf":
        return
    data = tmp_path / layout
    shutil.copytree(fixtures_dir / layout, data)
    (data / MOVIE_FILES[layout]).unlink()
    with caplog.at_level(logging.WARNING):
        ds = DataLoader(data).load()
    assert ds.movies is None and ds.unlisted_movie_ids.tolist() == []
    assert "rated movies are missing" not in caplog.text


def test_ml1m_counts(ml1m_dir):
    ds = DataLoader(ml1m_dir).load()
    assert (ds.n_interactions, ds.n_users, ds.n_items) == (1_000_209, 6_040, 3_706)
    assert len(ds.movies) == 3_883 and ds.unlisted_movie_ids.size == 0


def test_ml100k_counts(ml100k_dir):
    ds = DataLoader(ml100k_dir).load()
    assert (ds.n_interactions, ds.n_users, ds.n_items) == (100_000, 943, 1_682)
    assert ds.unlisted_movie_ids.size == 0
