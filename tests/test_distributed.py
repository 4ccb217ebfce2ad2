"""`--executor ray` on ML-100K with a real local Ray cluster (`ray.init(num_cpus=2)`): the dataset layout
equals the local executor's output user by user, a scoring actor killed mid-shard is restarted and its
shard retried without duplicates or gaps, a shard failing beyond its retries publishes nothing, and the
contract checker and the lookup service read the dataset layout."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import ray

from batch.contract import (
    LATEST,
    MANIFEST,
    METRICS,
    MODEL_DIR,
    RECOMMENDATIONS,
    RECOMMENDATIONS_DIR,
    RUNS_DIR,
    STAGING_PREFIX,
    RunInvalid,
    RunWriter,
    read_latest,
    run_dir,
    verify_run,
)
from batch.distributed import KILL_ENV, TMP_DIR, shard_bounds, write_recommendations_ray
from batch.job import PausePoint, run_job, write_recommendations
from batch.settings import RunSettings
from lookup_service.store import load_run
from model.columns import MOVIE_ID, RANK, SCORE, USER_ID
from model.data import DataLoader, leave_one_out
from model.registry import build_model

TOP_N = 20
RAY = {"workers": 2, "shards_per_worker": 3, "max_retries": 2}
FAST = {"model": "itempop", "eval_negatives": 3, "gate": {"floors": {}, "default_floor": 0.0}}


@pytest.fixture(scope="module")
def ray_cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def ml100k(ml100k_dir):
    dataset = DataLoader(ml100k_dir).load()
    return dataset, dataset.interactions().to_csr()


def settings(data_dir: Path, output: Path, **extra) -> RunSettings:
    return RunSettings(data_dir=data_dir, output_dir=output, top_n=TOP_N, **{"ray": RAY, **extra})


def read_recommendations(run: Path) -> pd.DataFrame:
    single = run / RECOMMENDATIONS
    return pd.read_parquet(single if single.exists() else run / RECOMMENDATIONS_DIR)


def test_shard_bounds_cover_every_user_once():
    assert shard_bounds(10, 3).tolist() == [0, 3, 7, 10]
    assert shard_bounds(2, 8).tolist() == [0, 1, 2]
    bounds = shard_bounds(943, 6)
    assert bounds[0] == 0 and bounds[-1] == 943 and np.all(np.diff(bounds) > 0)


def test_ray_scoring_equals_local_user_by_user(ray_cluster, ml100k, ml100k_dir, tmp_path):
    """A trained GMF (Keras): the parts, read in order, hold the local executor's rows: same users, same
    movies in the same order, scores within 1e-6; the held-out test items' full-ranking ranks from the
    scoring pass are the local executor's."""
    dataset, known = ml100k
    model = build_model("gmf", engine="keras", config={"factors": 8}, train_config={"epochs": 1})
    model.fit(dataset.interactions())
    run = settings(ml100k_dir, tmp_path, chunk_users=100, executor="ray")
    local_writer, ray_writer = RunWriter(tmp_path / "local"), RunWriter(tmp_path / "ray")
    held = leave_one_out(dataset, seed=0, n_negatives=3).held_out("test")
    rows, ranks = write_recommendations(local_writer, model, dataset, known, run, PausePoint(), held)
    model.save(ray_writer.path(MODEL_DIR), user_ids=dataset.user_ids, item_ids=dataset.item_ids)
    report = write_recommendations_ray(ray_writer, dataset, known, run, held)

    assert report.rows == rows and report.shards == 6 and report.worker_peak_rss_mb > 50
    assert ranks.shape == (len(held.user_idx),) and np.unique(ranks).size > 10  # ranks that can differ
    np.testing.assert_array_equal(report.ranks, ranks)
    parts = sorted((ray_writer.staging / RECOMMENDATIONS_DIR).iterdir())
    assert [p.name for p in parts] == [f"part-{k:05d}.parquet" for k in range(6)]
    assert not (ray_writer.staging / TMP_DIR).exists()
    local = pq.read_table(local_writer.staging / RECOMMENDATIONS).to_pandas()
    distributed = pd.concat([pq.read_table(p).to_pandas() for p in parts], ignore_index=True)
    for part in parts:  # each part sorted by (user, rank)
        frame = pq.read_table(part).to_pandas()
        assert frame[[USER_ID, RANK]].equals(frame[[USER_ID, RANK]].sort_values([USER_ID, RANK]))
    assert distributed[USER_ID].is_monotonic_increasing
    assert distributed[[USER_ID, RANK, MOVIE_ID]].equals(local[[USER_ID, RANK, MOVIE_ID]])
    np.testing.assert_allclose(distributed[SCORE], local[SCORE], rtol=0, atol=1e-6)
    assert local[USER_ID].nunique() == dataset.n_users
    rated = set(zip(dataset.user_ids[known.nonzero()[0]], dataset.item_ids[known.nonzero()[1]], strict=True))
    assert not any((u, m) in rated for u, m in zip(distributed[USER_ID], distributed[MOVIE_ID], strict=True))


@pytest.fixture(scope="module")
def local_run(ml100k_dir, tmp_path_factory) -> pd.DataFrame:
    output = tmp_path_factory.mktemp("local")
    run_job(settings(ml100k_dir, output, **FAST))
    return read_recommendations(run_dir(output, read_latest(output)))


def test_killed_worker_is_retried_and_the_run_publishes_every_row_once(
    ray_cluster, ml100k_dir, local_run, tmp_path, monkeypatch
):
    marker = tmp_path / "killed"
    monkeypatch.setenv(KILL_ENV, str(marker))
    output = tmp_path / "out"
    manifest = run_job(settings(ml100k_dir, output, executor="ray", **FAST))
    assert marker.exists(), "no scoring actor was killed"
    assert read_latest(output) == manifest.run_id
    run = run_dir(output, manifest.run_id)
    verify_run(run)
    parts = sorted(name for name in manifest.files if name.startswith(RECOMMENDATIONS_DIR + "/"))
    assert len(parts) == 6 and RECOMMENDATIONS not in manifest.files
    assert sorted(p.name for p in (run / RECOMMENDATIONS_DIR).iterdir()) == [p.split("/")[1] for p in parts]
    recs = read_recommendations(run)
    assert not recs.duplicated([USER_ID, RANK]).any() and not recs.duplicated([USER_ID, MOVIE_ID]).any()
    assert recs.equals(local_run)  # no gaps: every user, every rank, as the local executor wrote them
    assert manifest.counts["rows"] == len(recs)
    store = load_run(run)  # the lookup service: served arrays written from the parts, memory-mapped
    assert store.memory_mapped and len(store.users.ids) == recs[USER_ID].nunique()
    user = int(recs[USER_ID].iloc[-1])
    expected = recs[recs[USER_ID] == user].sort_values(RANK)[MOVIE_ID].to_numpy()
    served = store.for_user(user)
    assert np.array_equal(np.asarray([store.movies[p][MOVIE_ID] for p in served.movie_pos]), expected)


def test_shard_failing_beyond_its_retries_publishes_nothing(ray_cluster, ml100k_dir, tmp_path, monkeypatch):
    output = tmp_path / "out"
    run_job(settings(ml100k_dir, output, **FAST))
    previous = read_latest(output)
    monkeypatch.setenv(KILL_ENV, str(tmp_path / "killed"))
    failing = settings(ml100k_dir, output, executor="ray", **{**FAST, "ray": {**RAY, "max_retries": 0}})
    with pytest.raises(Exception) as failure:
        run_job(failing)
    assert "died" in str(failure.value).lower() or "actor" in str(failure.value).lower(), failure.value
    assert read_latest(output) == previous
    verify_run(run_dir(output, previous))
    assert not list((output / RUNS_DIR).glob(f"{STAGING_PREFIX}*"))
    assert [p.name for p in (output / RUNS_DIR).iterdir()] == [previous]


def test_contract_refuses_stray_and_mixed_layouts(ray_cluster, ml100k_dir, tmp_path):
    output = tmp_path / "out"
    manifest = run_job(settings(ml100k_dir, output, executor="ray", **FAST))
    run = run_dir(output, manifest.run_id)
    stray = tmp_path / "stray"
    shutil.copytree(run, stray)
    shutil.copy(stray / RECOMMENDATIONS_DIR / "part-00000.parquet", stray / RECOMMENDATIONS_DIR / "x.parquet")
    with pytest.raises(RunInvalid, match="not listed"):
        verify_run(stray)
    mixed = tmp_path / "mixed"
    shutil.copytree(run, mixed)
    data = json.loads((mixed / MANIFEST).read_text())
    data["files"][RECOMMENDATIONS] = data["files"]["recommendations/part-00000.parquet"]
    (mixed / MANIFEST).write_text(json.dumps(data))
    shutil.copy(mixed / RECOMMENDATIONS_DIR / "part-00000.parquet", mixed / RECOMMENDATIONS)
    with pytest.raises(RunInvalid, match="both"):
        verify_run(mixed)
    assert (output / LATEST).read_text().strip() == manifest.run_id


def test_ray_run_without_refit_gives_the_scoring_pass_full_ranking_figures(ray_cluster, ml100k_dir, tmp_path):
    """No refit: the published model is the selection model and the Ray actors rank the held-out test
    items from the same scores; the figures equal the local executor's."""
    figures = {}
    for executor in ("local", "ray"):
        output = tmp_path / executor
        extra = {**FAST, "model": "bpr", "refit": False, "full_validation": False}
        manifest = run_job(settings(ml100k_dir, output, executor=executor, **extra))
        metrics = json.loads((run_dir(output, manifest.run_id) / METRICS).read_text())
        assert metrics["test"]["full"]["from"] == "scoring pass"
        figures[executor] = {k: metrics["test"]["full"][k] for k in ("hr@10", "ndcg@10")}
    assert figures["ray"] == figures["local"]
    assert 0 < figures["local"]["hr@10"] < 1  # a figure that can tell a wrong rank
