"""`ncf-batch run` end to end through the real command on small generated MovieLens-1M-style fixtures:
the output contract, masking of rated movies, chunk-size invariance, the quality gate, bad input, and
SIGKILL during scoring and publishing."""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from batch import exit_codes
from batch.contract import (
    CANDIDATES,
    HISTORY,
    LATEST,
    MANIFEST,
    METRICS,
    MODEL_DIR,
    MOVIES,
    POPULAR,
    RECOMMENDATIONS,
    RUNS_DIR,
    SIMILAR_MOVIES,
    STAGING_PREFIX,
    TABLE_SCHEMAS,
    read_latest,
    run_dir,
    sha256_file,
    verify_run,
)

REPO = Path(__file__).resolve().parents[1]
N_USERS, N_MOVIES, TOP_N = 40, 60, 10
FAST = ["--model", "itempop", "--eval-negatives", "3", "--top-n", str(TOP_N), "--gate-default-floor", "0"]


def write_fixture(directory: Path) -> pd.DataFrame:
    """ratings.dat + movies.dat: Zipf-like popularity (so ItemPop beats Random), three users who rated all
    but 4 movies (fewer unrated movies than TOP_N), raw ids that are not dense (movie_id = 3 * k)."""
    rng = np.random.default_rng(0)
    movie_ids = np.arange(1, N_MOVIES + 1) * 3
    weights = 1.0 / np.arange(1, N_MOVIES + 1)
    rows = []
    for user in range(1, N_USERS + 1):
        count = N_MOVIES - 4 if user <= 3 else int(rng.integers(8, 25))
        chosen = rng.choice(movie_ids, size=count, replace=False, p=weights / weights.sum())
        for j, movie in enumerate(chosen):
            rows.append((user * 7, int(movie), int(rng.integers(1, 6)), 978_300_000 + 60 * j + user))
    ratings = pd.DataFrame(rows, columns=["user_id", "movie_id", "rating", "timestamp"])
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "ratings.dat").write_text("".join(f"{u}::{m}::{r}::{t}\n" for u, m, r, t in rows))
    titles = [f"{m}::Movie {m} ({1950 + m % 50})::Comedy|Drama\n" for m in movie_ids[:-1]]
    titles.append(f"{movie_ids[-1]}::Untitled Without Year::(no genres listed)\n")
    (directory / "movies.dat").write_text("".join(titles))
    return ratings


@pytest.fixture(scope="module")
def fixture_dir(tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    directory = tmp_path_factory.mktemp("ml-fixture")
    return directory, write_fixture(directory)


def run_batch(
    data_dir: Path, output_dir: Path, *flags: str, env: dict | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "batch",
            "run",
            "--data-dir",
            str(data_dir),
            "--output-dir",
            str(output_dir),
            *flags,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


def assert_ok(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == exit_codes.OK, proc.stderr[-3000:]


@pytest.fixture(scope="module")
def published(fixture_dir, tmp_path_factory) -> Path:
    """An output directory with one published run (chunks of 7 users)."""
    output = tmp_path_factory.mktemp("published")
    assert_ok(run_batch(fixture_dir[0], output, *FAST, "--chunk-users", "7"))
    return output


def snapshot(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()
    }


def test_run_publishes_a_complete_checksum_valid_run(published, fixture_dir):
    data_dir, _ = fixture_dir
    run_id = read_latest(published)
    assert run_id is not None and run_id[:8].isdigit()
    manifest = verify_run(run_dir(published, run_id))
    assert manifest.run_id == run_id and manifest.top_n == TOP_N
    assert manifest.counts["users"] == N_USERS and manifest.counts["movies"] == N_MOVIES
    assert manifest.dataset["name"] == data_dir.name
    for name in ("ratings.dat", "movies.dat"):
        assert manifest.dataset["files"][name] == sha256_file(data_dir / name)
    assert set(manifest.files) >= {RECOMMENDATIONS, MOVIES, POPULAR, METRICS, CANDIDATES, SIMILAR_MOVIES}
    assert HISTORY in manifest.files
    assert (manifest.candidates, manifest.similar_k, manifest.history) == (200, 100, 10)
    assert manifest.similar_source == "cooccurrence"  # ItemPop has no item embeddings
    assert manifest.code_version
    metrics = json.loads((run_dir(published, run_id) / METRICS).read_text())
    for which in ("validation", "test"):
        for protocol in ("sampled", "full"):
            assert 0.0 <= metrics[which][protocol]["hr@10"] <= 1.0
            assert 0.0 <= metrics[which][protocol]["ndcg@10"] <= metrics[which][protocol]["hr@10"]
    steps = {
        "load",
        "split",
        "fit",
        "evaluate_validation",
        "evaluate_test",
        "refit",
        "gate",
        "score",
        "write",
        "similar",
        "history",
        "beyond_accuracy",
    }
    assert steps <= set(metrics["step_seconds"])
    assert set(metrics["step_peak_rss_mb"]) == set(metrics["step_seconds"])
    assert all(mb > 10 for mb in metrics["step_peak_rss_mb"].values())
    figures = metrics["beyond_accuracy"]
    assert figures["k"] == 10 and figures["users"] == N_USERS and figures["catalogue_movies"] == N_MOVIES
    assert 0 < figures["coverage"] <= figures["coverage_top_n"] <= 1 and 0 <= figures["gini"] < 1
    assert figures["mean_popularity_rank"] >= 1 and figures["novelty"] > 0
    # every movie of the fixture is Comedy|Drama but one without genres, which few lists hold
    assert 0 < figures["intra_list_diversity"] < 0.1
    assert metrics["drift"]["previous_run"] is None
    published_checks = metrics["quality_gate"]["published_model"]
    assert published_checks["finite"] and published_checks["overlap@10"] > 0.5
    assert metrics["refit"] and metrics["training"]["class"] == "model.baselines.ItemPop"
    # every model is saved with the run and loads back (a baseline included)
    from model.base import load_model

    model = load_model(run_dir(published, run_id) / MODEL_DIR)
    assert model.n_users == N_USERS and model.popularity_.sum() == metrics["n_interactions"]
    assert not list((published / RUNS_DIR).glob(f"{STAGING_PREFIX}*"))


def test_recommendations_exclude_rated_movies_and_are_ranked(published, fixture_dir):
    _, ratings = fixture_dir
    path = run_dir(published, read_latest(published)) / RECOMMENDATIONS
    recs = pq.read_table(path).to_pandas()
    assert pq.ParquetFile(path).metadata.num_row_groups == -(-N_USERS // 7)  # one per chunk of 7 users
    rated = set(zip(ratings.user_id, ratings.movie_id, strict=True))
    assert not any((u, m) in rated for u, m in zip(recs.user_id, recs.movie_id, strict=True))
    assert set(recs.movie_id) <= set(ratings.movie_id)
    unrated = N_MOVIES - ratings.groupby("user_id").size()
    per_user = recs.groupby("user_id").size()
    expected = np.minimum(TOP_N, unrated)
    assert per_user.to_dict() == expected.to_dict()
    assert (expected < TOP_N).sum() == 3  # the heavy raters: fewer unrated movies than N
    assert recs[["user_id", "rank"]].equals(recs[["user_id", "rank"]].sort_values(["user_id", "rank"]))
    for _, group in recs.groupby("user_id"):
        assert group["rank"].tolist() == list(range(1, len(group) + 1))
        assert np.all(np.diff(group["score"].to_numpy()) <= 0)
        assert group.movie_id.is_unique


def test_parquet_has_declared_types_in_pyarrow_pandas_and_duckdb(published):
    directory = run_dir(published, read_latest(published))
    for name, schema in TABLE_SCHEMAS.items():
        assert pq.read_schema(directory / name).remove_metadata().equals(schema)
        frame = pd.read_parquet(directory / name)
        assert list(frame.columns) == schema.names
    recs = pd.read_parquet(directory / RECOMMENDATIONS)
    assert [str(t) for t in recs.dtypes] == ["int32", "int16", "int32", "float32"]
    movies = pd.read_parquet(directory / MOVIES)
    untitled = movies[movies.title == "Untitled Without Year"].iloc[0]
    assert pd.isna(untitled.year) and list(untitled.genres) == []
    assert list(movies.iloc[0].genres) == ["Comedy", "Drama"]
    con = duckdb.connect()
    types = {
        name: {
            row[0]: row[1] for row in con.execute(f"DESCRIBE SELECT * FROM '{directory / name}'").fetchall()
        }
        for name in TABLE_SCHEMAS
    }
    assert types[RECOMMENDATIONS] == {
        "user_id": "INTEGER",
        "rank": "SMALLINT",
        "movie_id": "INTEGER",
        "score": "FLOAT",
    }
    assert types[MOVIES] == {
        "movie_id": "INTEGER",
        "title": "VARCHAR",
        "year": "SMALLINT",
        "genres": "VARCHAR[]",
    }
    assert types[POPULAR] == {"rank": "SMALLINT", "movie_id": "INTEGER", "score": "FLOAT"}
    top = con.execute(
        f"SELECT movie_id, score FROM read_parquet('{directory / POPULAR}') ORDER BY rank"
    ).fetchall()
    assert len(top) == N_MOVIES and top[0][0] == 3  # every movie (candidates 200 > 60); Zipf head first
    assert all(a[1] >= b[1] for a, b in itertools.pairwise(top))


def test_same_recommendations_for_any_chunk_size(published, fixture_dir, tmp_path):
    reference = pq.read_table(run_dir(published, read_latest(published)) / RECOMMENDATIONS)
    for chunk in ("1", "1000"):
        output = tmp_path / chunk
        assert_ok(run_batch(fixture_dir[0], output, *FAST, "--chunk-users", chunk))
        table = pq.read_table(run_dir(output, read_latest(output)) / RECOMMENDATIONS)
        assert table.equals(reference), f"chunk size {chunk} changed the recommendations"


def test_quality_gate_refusal_leaves_output_untouched(published, fixture_dir, tmp_path):
    output = tmp_path / "out"
    shutil.copytree(published, output)
    before = snapshot(output)
    # Below the floor.
    proc = run_batch(fixture_dir[0], output, *FAST, "--gate-protocol", "full", "--gate-default-floor", "1.0")
    assert proc.returncode == exit_codes.QUALITY_GATE, proc.stderr[-2000:]
    assert re.search(r"below the \S+ floor 1.0000", proc.stderr)
    # Random scores are far below ItemPop's on the Zipf fixture: a drop beyond the tolerance.
    flags = [*FAST, "--model", "random", "--gate-protocol", "full", "--gate-max-drop", "0.01"]
    proc = run_batch(fixture_dir[0], output, *flags)
    assert proc.returncode == exit_codes.QUALITY_GATE, proc.stderr[-2000:]
    assert "below the published run" in proc.stderr
    assert snapshot(output) == before


def test_bad_input_exits_3_naming_file_and_line(fixture_dir, tmp_path):
    data = tmp_path / "bad"
    shutil.copytree(fixture_dir[0], data)
    lines = (data / "ratings.dat").read_text().splitlines(keepends=True)
    lines[41] = "7::3::five::978300000\n"
    (data / "ratings.dat").write_text("".join(lines))
    proc = run_batch(data, tmp_path / "out", *FAST)
    assert proc.returncode == exit_codes.BAD_INPUT
    assert f"{data / 'ratings.dat'}:42" in proc.stderr
    assert not (tmp_path / "out" / LATEST).exists()


def test_missing_data_dir_is_a_usage_error(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "batch", "run", "--output-dir", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "NCF_DATA_DIR"},
        timeout=120,
    )
    assert proc.returncode == exit_codes.USAGE and "data_dir" in proc.stderr


@pytest.mark.parametrize("stage", ["scoring", "staged", "renamed"])
def test_sigkill_keeps_latest_complete_and_rerun_succeeds(stage, published, fixture_dir, tmp_path):
    output = tmp_path / "out"
    shutil.copytree(published, output)
    previous = read_latest(output)
    marker = tmp_path / "paused"
    command = [sys.executable, "-m", "batch", "run", "--data-dir", str(fixture_dir[0])]
    proc = subprocess.Popen(
        [*command, "--output-dir", str(output), *FAST, "--chunk-users", "5"],
        cwd=REPO,
        env={**os.environ, "NCF_TEST_PAUSE_AT": f"{stage}:{marker}"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert proc.poll() is None, "the job ended before reaching the pause point"
            assert time.monotonic() < deadline, "the job never reached the pause point"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert read_latest(output) == previous
    verify_run(run_dir(output, previous))
    leftovers = list((output / RUNS_DIR).glob(f"{STAGING_PREFIX}*"))
    assert leftovers if stage in ("scoring", "staged") else not leftovers

    assert_ok(run_batch(fixture_dir[0], output, *FAST))
    latest = read_latest(output)
    assert latest != previous
    verify_run(run_dir(output, latest))
    verify_run(run_dir(output, previous))
    assert not list((output / RUNS_DIR).glob(f"{STAGING_PREFIX}*"))


def test_manifest_lists_every_file_with_size(published):
    directory = run_dir(published, read_latest(published))
    manifest = json.loads((directory / MANIFEST).read_text())
    on_disk = {str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file()} - {MANIFEST}
    assert set(manifest["files"]) == on_disk
    for name, entry in manifest["files"].items():
        assert entry["bytes"] == (directory / name).stat().st_size


def test_ml100k_run_meets_the_contract(tmp_path, ml100k_dir):
    data_dir = ml100k_dir
    assert_ok(
        run_batch(
            data_dir,
            tmp_path,
            "--model",
            "itempop",
            "--gate-floors",
            '{"ml-100k": 0.3}',
            "--chunk-users",
            "300",
        )
    )
    manifest = verify_run(run_dir(tmp_path, read_latest(tmp_path)))
    assert manifest.counts["users"] == 943 and manifest.counts["rows"] == 943 * 50
    recs = pd.read_parquet(run_dir(tmp_path, manifest.run_id) / RECOMMENDATIONS)
    ratings = pd.read_csv(data_dir / "u.data", sep="\t", names=["user_id", "movie_id", "rating", "timestamp"])
    merged = recs.merge(ratings, on=["user_id", "movie_id"], how="inner")
    assert merged.empty
    metrics = json.loads((run_dir(tmp_path, manifest.run_id) / METRICS).read_text())
    assert metrics["test"]["sampled"]["hr@10"] > 0.3


def test_tiny_neumf_run_saves_a_reloadable_model(fixture_dir, tmp_path):
    from model.base import load_id_maps
    from model.ncf.base import NCFModel

    flags = ["--model", "neumf", "--engine", "keras", "--epochs", "2", "--factors", "4", "--layers", "8,4"]
    flags += ["--batch-size", "256", "--eval-negatives", "3", "--top-n", str(TOP_N)]
    flags += ["--gate-default-floor", "0"]
    flags += ["--no-refit", "--no-pretrain"]  # one XLA compilation instead of several keeps the test fast
    assert_ok(run_batch(fixture_dir[0], tmp_path, *flags, env={"TF_CPP_MIN_LOG_LEVEL": "2"}))
    directory = run_dir(tmp_path, read_latest(tmp_path))
    manifest = verify_run(directory)
    assert manifest.engine == "keras" and manifest.model_config_["hyperparameters"]["config"]["layers"] == [
        8,
        4,
    ]
    assert manifest.model_config_["best_epoch"] in (1, 2)
    metrics = json.loads((directory / METRICS).read_text())
    history = metrics["training"]["history"]
    assert 1 <= len(history) <= 2 and "val_hr@10" in history[0]

    model = NCFModel.load(directory / "model")
    user_ids, item_ids = load_id_maps(directory / "model")
    # similar movies: the cosine of the published model's GMF item embeddings
    assert manifest.similar_source == "embedding"
    embedding = model.get_params()["gmf/item_embedding"].astype(np.float64)
    unit = embedding / np.linalg.norm(embedding, axis=1, keepdims=True)
    similar = pd.read_parquet(directory / SIMILAR_MOVIES)
    best = similar[similar["rank"] == 1].head(5)
    a, b = np.searchsorted(item_ids, best.movie_id), np.searchsorted(item_ids, best.similar_movie_id)
    np.testing.assert_allclose(best.score, np.sum(unit[a] * unit[b], axis=1), rtol=1e-4)
    cosine = unit[a[0]] @ unit.T
    cosine[a[0]] = -np.inf
    assert b[0] == int(np.argmax(cosine))
    assert user_ids.shape == (N_USERS,) and item_ids.shape == (N_MOVIES,)
    recs = pd.read_parquet(directory / RECOMMENDATIONS)
    first = recs[recs["rank"] == 1].head(5)
    users = np.searchsorted(user_ids, first.user_id.to_numpy())
    items = np.searchsorted(item_ids, first.movie_id.to_numpy())
    scores = model.score_users(users)[np.arange(len(users)), items]
    np.testing.assert_allclose(scores, first.score.to_numpy(), rtol=1e-4, atol=1e-6)


def test_rated_movies_missing_from_movies_dat_are_published_bare_and_reported(fixture_dir, tmp_path):
    data = tmp_path / "gaps"
    shutil.copytree(fixture_dir[0], data)
    lines = (data / "movies.dat").read_text().splitlines(keepends=True)
    dropped = sorted(int(line.split("::")[0]) for line in lines[:2])
    (data / "movies.dat").write_text("".join(lines[2:]))
    proc = run_batch(data, tmp_path / "out", *FAST)
    assert_ok(proc)
    assert "2 rated movies" in proc.stderr or "2 rated movie" in proc.stderr
    directory = run_dir(tmp_path / "out", read_latest(tmp_path / "out"))
    metrics = json.loads((directory / METRICS).read_text())
    assert metrics["data_gaps"] == {"unlisted_movies": 2, "unlisted_movie_ids": dropped}
    movies = pd.read_parquet(directory / MOVIES).set_index("movie_id")
    assert movies.loc[dropped, "title"].isna().all() and len(movies) == N_MOVIES


def test_candidates_extend_the_published_lists_and_similar_and_history_follow_the_ratings(
    published, fixture_dir
):
    _, ratings = fixture_dir
    directory = run_dir(published, read_latest(published))
    recs = pd.read_parquet(directory / RECOMMENDATIONS)
    deep = pd.read_parquet(directory / CANDIDATES)
    unrated = N_MOVIES - ratings.groupby("user_id").size()
    assert deep.groupby("user_id").size().to_dict() == np.minimum(200, unrated).to_dict()
    head = deep[deep["rank"] <= TOP_N].reset_index(drop=True)
    pd.testing.assert_frame_equal(head, recs)
    rated = set(zip(ratings.user_id, ratings.movie_id, strict=True))
    assert not any((u, m) in rated for u, m in zip(deep.user_id, deep.movie_id, strict=True))
    assert len(pd.read_parquet(directory / POPULAR)) == ratings.movie_id.nunique()  # 200 deep, 60 movies

    similar = pd.read_parquet(directory / SIMILAR_MOVIES)
    assert (similar.movie_id != similar.similar_movie_id).all() and (similar.score > 0).all()
    assert similar.groupby("movie_id").size().max() == N_MOVIES - 1  # K = 100 > the 59 other movies
    raters = ratings.groupby("movie_id").user_id.apply(set)
    some = similar[similar["rank"] == 1].head(5)
    for movie, other, score in zip(some.movie_id, some.similar_movie_id, some.score, strict=True):
        a, b = raters[movie], raters[other]
        assert score == pytest.approx(len(a & b) / np.sqrt(len(a) * len(b)), rel=1e-5)

    history = pd.read_parquet(directory / HISTORY)
    newest = (
        ratings.sort_values(["user_id", "timestamp"], kind="stable")
        .groupby("user_id")
        .tail(10)
        .iloc[::-1]
        .sort_values("user_id", kind="stable")
    )
    assert history.movie_id.tolist() == newest.movie_id.tolist()
    assert history.groupby("user_id")["rank"].apply(list).map(lambda r: r == list(range(1, len(r) + 1))).all()


def test_drift_is_measured_against_latest_and_can_refuse_a_run(published, fixture_dir, tmp_path):
    output = tmp_path / "out"
    shutil.copytree(published, output)
    previous = read_latest(output)
    assert_ok(run_batch(fixture_dir[0], output, *FAST))
    metrics = json.loads((run_dir(output, read_latest(output)) / METRICS).read_text())
    same = metrics["drift"]
    assert same["previous_run"] == previous and same["users_compared"] == N_USERS
    assert same["mean_overlap"] == 1.0 and same["changed_share"] == 0.0  # ItemPop again: the same lists
    before = snapshot(output)
    flags = [
        *FAST,
        "--model",
        "random",
        "--no-refit",
        "--gate-max-drop",
        "1",
        "--gate-min-drift-overlap",
        "0.9",
    ]
    proc = run_batch(fixture_dir[0], output, *flags)
    assert proc.returncode == exit_codes.QUALITY_GATE, proc.stderr[-2000:]
    assert "of their movies with the published run" in proc.stderr
    assert snapshot(output) == before
    assert not list((output / RUNS_DIR).glob(f"{STAGING_PREFIX}*"))


def test_without_refit_the_scoring_pass_gives_the_full_ranking_test_figures(fixture_dir, tmp_path):
    """The published model is the selection model: the full-ranking test figures come from the scoring
    pass and equal the evaluator's on the published model; no full-ranking validation when turned off."""
    from model.base import load_model
    from model.data import DataLoader, leave_one_out
    from model.evaluation import Evaluator

    flags = [*FAST, "--no-refit", "--no-full-validation", "--chunk-users", "7", "--model", "bpr"]
    assert_ok(run_batch(fixture_dir[0], tmp_path, *flags))
    directory = run_dir(tmp_path, read_latest(tmp_path))
    metrics = json.loads((directory / METRICS).read_text())
    assert set(metrics["validation"]) == {"sampled"}
    assert metrics["test"]["full"]["from"] == "scoring pass"
    split = leave_one_out(DataLoader(fixture_dir[0]).load(), seed=0, n_negatives=3)
    expected = Evaluator(split).evaluate(load_model(directory / MODEL_DIR), "test", ("full",))["full"]
    for key in ("hr@10", "ndcg@10"):
        assert metrics["test"]["full"][key] == expected[key]
    assert 0 < expected["hr@10"] < 1  # a figure that can tell a wrong rank


def test_large_catalogue_profile_runs_and_sets_what_it_documents(fixture_dir, tmp_path):
    """deploy/profiles/large-catalogue.toml stays valid settings, and a (tiny) run with it publishes a
    model trained with lazy updates, without pretraining or refit, with test full ranking from scoring."""
    profile = REPO / "deploy" / "profiles" / "large-catalogue.toml"
    flags = ["--config-file", str(profile), "--factors", "4", "--layers", "8,4", "--batch-size", "256"]
    flags += ["--eval-negatives", "3", "--top-n", str(TOP_N), "--gate-default-floor", "0"]
    assert_ok(run_batch(fixture_dir[0], tmp_path, *flags, env={"TF_CPP_MIN_LOG_LEVEL": "2"}))
    directory = run_dir(tmp_path, read_latest(tmp_path))
    metrics = json.loads((directory / METRICS).read_text())
    train_config = metrics["training"]["hyperparameters"]["train_config"]
    assert train_config["embedding_updates"] == "lazy" and train_config["pretrain"] is False
    assert (train_config["epochs"], train_config["num_negatives"]) == (2, 4)
    assert metrics["refit"] is False and set(metrics["validation"]) == {"sampled"}
    assert metrics["test"]["full"]["from"] == "scoring pass"


def test_warm_start_from_the_latest_run_when_the_architecture_matches(fixture_dir, tmp_path):
    neumf = [
        "--model",
        "neumf",
        "--engine",
        "numpy",
        "--epochs",
        "1",
        "--layers",
        "8,4",
        "--batch-size",
        "256",
    ]
    flags = [*neumf, "--eval-negatives", "3", "--top-n", str(TOP_N), "--gate-default-floor", "0"]
    flags += ["--no-refit", "--no-pretrain"]

    def run(*extra: str) -> dict:
        assert_ok(run_batch(fixture_dir[0], tmp_path, *flags, *extra))
        return json.loads((run_dir(tmp_path, read_latest(tmp_path)) / METRICS).read_text())

    first = run("--factors", "4", "--warm-start")
    assert first["warm_start"] is None  # nothing published yet: trained from scratch
    cold = run("--factors", "4")
    assert cold["warm_start"] is None  # not asked for
    previous = read_latest(tmp_path)
    warm = run("--factors", "4", "--warm-start")
    assert warm["warm_start"] == {"from_run": previous, "applied": True, "reason": None}
    # it starts where the previous model stopped: a lower first-epoch loss than the cold run's (a warm
    # start's history also has an epoch-0 row: the start's validation figures)
    loss = [next(r["loss"] for r in m["training"]["history"] if r["epoch"] == 1) for m in (cold, warm)]
    assert loss[1] < loss[0], loss
    other = run("--factors", "8", "--warm-start")  # another architecture: trained from scratch, said why
    assert other["warm_start"]["applied"] is False and "config" in other["warm_start"]["reason"]
