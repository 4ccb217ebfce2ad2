"""`--executor ray` on ML-100K with a real local Ray cluster (`ray.init(num_cpus=2)`): the dataset layout
(parts of `candidates/` and `recommendations/`) equals the local executor's two files user by user, a
scoring actor killed mid-shard is restarted and its shard retried without duplicates or gaps, a shard
failing beyond its retries publishes nothing, the contract checker refuses stray parts and mixed layouts,
and the lookup service serves a Ray run (every endpoint) as it serves the local executor's."""

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
    CANDIDATES,
    CANDIDATES_DIR,
    LATEST,
    LIST_TABLES,
    MANIFEST,
    METRICS,
    MODEL_DIR,
    RECOMMENDATIONS,
    RECOMMENDATIONS_DIR,
    RUNS_DIR,
    STAGING_PREFIX,
    RunInvalid,
    RunWriter,
    dataset_dir,
    part_name,
    read_latest,
    run_dir,
    sha256_file,
    verify_run,
)
from batch.distributed import KILL_ENV, TMP_DIR, ScorerPool, shard_bounds, write_recommendations_ray
from batch.job import PausePoint, run_job, write_recommendations
from batch.settings import RunSettings
from lookup_service.app import create_app
from lookup_service.settings import ServiceSettings
from lookup_service.store import load_run
from model.columns import MOVIE_ID, RANK, SCORE, USER_ID
from model.data import DataLoader, leave_one_out
from model.registry import build_model
from tests.lookup.synthetic_runs import copy_without_serving_arrays

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


def read_list(run: Path, table: str = RECOMMENDATIONS) -> pd.DataFrame:
    """A list table of a run in either layout (pandas reads a dataset folder's parts in name order)."""
    single = run / table
    return pd.read_parquet(single if single.exists() else run / dataset_dir(table))


def test_shard_bounds_cover_every_user_once():
    assert shard_bounds(10, 3).tolist() == [0, 3, 7, 10]
    assert shard_bounds(2, 8).tolist() == [0, 1, 2]
    bounds = shard_bounds(943, 6)
    assert bounds[0] == 0 and bounds[-1] == 943 and np.all(np.diff(bounds) > 0)


@pytest.mark.parametrize("prepared", [False, True], ids=["loaded", "prepared"])
def test_ray_scoring_equals_local_user_by_user(ray_cluster, ml100k, ml100k_dir, tmp_path, prepared):
    """A trained GMF (Keras): the parts of both lists, read in order, hold the local executor's rows: the
    candidates (200 deep) and the recommendations (their first TOP_N), same users, same movies in the same
    order, scores within 1e-6; the held-out test items' full-ranking ranks from the scoring pass are the
    local executor's. Either with actors that load the saved model, or with actors prepared as in the job
    (an untrained model of the run's sizes compiled before, the saved parameters set into it)."""
    dataset, known = ml100k
    options = {"engine": "keras", "config": {"factors": 8}, "train_config": {"epochs": 1}}
    model = build_model("gmf", **options).fit(dataset.interactions())
    run = settings(ml100k_dir, tmp_path, chunk_users=100, executor="ray", model="gmf", ncf=options["config"])
    local_writer, ray_writer = RunWriter(tmp_path / "local"), RunWriter(tmp_path / "ray")
    held = leave_one_out(dataset, seed=0, n_negatives=3).held_out("test")
    rows, ranks = write_recommendations(local_writer, model, dataset, known, run, PausePoint(), held)
    model.save(ray_writer.path(MODEL_DIR), user_ids=dataset.user_ids, item_ids=dataset.item_ids)
    with ScorerPool(run) as pool:
        if prepared:
            pool.prepare(run, dataset.n_users, dataset.n_items)
        report = write_recommendations_ray(ray_writer, dataset, known, run, held, pool)

    assert report.prepared is prepared and ("prepare_s" in report.phases) is prepared
    assert report.rows == rows and report.shards == 6 and report.worker_peak_rss_mb > 50
    assert ranks.shape == (len(held.user_idx),) and np.unique(ranks).size > 10  # ranks that can differ
    np.testing.assert_array_equal(report.ranks, ranks)
    assert not (ray_writer.staging / TMP_DIR).exists()
    rated = set(zip(dataset.user_ids[known.nonzero()[0]], dataset.item_ids[known.nonzero()[1]], strict=True))
    lists = {}
    for table in LIST_TABLES:
        parts = sorted((ray_writer.staging / dataset_dir(table)).iterdir())
        assert [p.name for p in parts] == [f"part-{k:05d}.parquet" for k in range(6)]
        local = pq.read_table(local_writer.staging / table).to_pandas()
        distributed = pd.concat([pq.read_table(p).to_pandas() for p in parts], ignore_index=True)
        for part in parts:  # each part sorted by (user, rank)
            frame = pq.read_table(part).to_pandas()
            assert frame[[USER_ID, RANK]].equals(frame[[USER_ID, RANK]].sort_values([USER_ID, RANK]))
        assert distributed[USER_ID].is_monotonic_increasing
        assert distributed[[USER_ID, RANK, MOVIE_ID]].equals(local[[USER_ID, RANK, MOVIE_ID]]), table
        np.testing.assert_allclose(distributed[SCORE], local[SCORE], rtol=0, atol=1e-6)
        assert local[USER_ID].nunique() == dataset.n_users
        pairs = zip(distributed[USER_ID], distributed[MOVIE_ID], strict=True)
        assert not any(pair in rated for pair in pairs)
        lists[table] = distributed
    deep, top = lists[CANDIDATES], lists[RECOMMENDATIONS]
    assert run.depth == 200 and deep.groupby(USER_ID).size().eq(run.depth).all()  # every user 200 deep
    assert report.candidate_rows == len(deep) and report.rows == len(top) == dataset.n_users * TOP_N
    assert deep[deep[RANK] <= TOP_N].reset_index(drop=True).equals(top)


@pytest.fixture(scope="module")
def local_output(ml100k_dir, tmp_path_factory) -> Path:
    """The output directory of one local-executor run (ItemPop)."""
    output = tmp_path_factory.mktemp("local")
    run_job(settings(ml100k_dir, output, **FAST))
    return output


@pytest.fixture(scope="module")
def ray_output(ray_cluster, ml100k_dir, tmp_path_factory) -> Path:
    """The output directory of the same run with the Ray executor."""
    output = tmp_path_factory.mktemp("ray")
    run_job(settings(ml100k_dir, output, executor="ray", **FAST))
    return output


def latest_run(output: Path) -> Path:
    return run_dir(output, read_latest(output))


def test_killed_worker_is_retried_and_the_run_publishes_every_row_once(
    ray_cluster, ml100k_dir, local_output, tmp_path, monkeypatch
):
    marker = tmp_path / "killed"
    monkeypatch.setenv(KILL_ENV, str(marker))
    output = tmp_path / "out"
    manifest = run_job(settings(ml100k_dir, output, executor="ray", **FAST))
    assert marker.exists(), "no scoring actor was killed"
    assert read_latest(output) == manifest.run_id
    run = run_dir(output, manifest.run_id)
    verify_run(run)
    for table in LIST_TABLES:
        folder = dataset_dir(table)
        parts = sorted(name for name in manifest.files if name.startswith(folder + "/"))
        assert len(parts) == 6 and table not in manifest.files
        assert sorted(p.name for p in (run / folder).iterdir()) == [p.split("/")[1] for p in parts]
        rows = read_list(run, table)
        assert not rows.duplicated([USER_ID, RANK]).any() and not rows.duplicated([USER_ID, MOVIE_ID]).any()
        # no gaps: every user, every rank, as the local executor wrote them
        assert rows.equals(read_list(latest_run(local_output), table)), table
    recs, deep = read_list(run), read_list(run, CANDIDATES)
    assert manifest.counts["rows"] == len(recs) and manifest.candidates == 200
    store = load_run(run)  # the lookup service: served arrays written from the candidate parts, mapped
    assert store.memory_mapped and len(store.users.ids) == deep[USER_ID].nunique()
    assert store.depth == 200 and int(np.diff(store.offsets).max()) == 200
    user = int(deep[USER_ID].iloc[-1])
    expected = deep[deep[USER_ID] == user].sort_values(RANK)[MOVIE_ID].to_numpy()
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


def rewrite_manifest(run: Path, change) -> None:
    data = json.loads((run / MANIFEST).read_text())
    change(data["files"])
    (run / MANIFEST).write_text(json.dumps(data))


def test_contract_refuses_stray_and_mixed_layouts(ray_output, tmp_path):
    run = latest_run(ray_output)
    verify_run(run)
    for folder in (RECOMMENDATIONS_DIR, CANDIDATES_DIR):  # a file in a list's folder the manifest lacks
        stray = tmp_path / f"stray-{folder}"
        shutil.copytree(run, stray)
        shutil.copy(stray / folder / "part-00000.parquet", stray / folder / "x.parquet")
        with pytest.raises(RunInvalid, match="not listed"):
            verify_run(stray)
    for table in LIST_TABLES:  # one list in both layouts
        both = tmp_path / f"both-{table}"
        shutil.copytree(run, both)
        part = part_name(0, table)
        rewrite_manifest(both, lambda files, t=table, p=part: files.__setitem__(t, files[p]))
        shutil.copy(both / part, both / table)
        with pytest.raises(RunInvalid, match="both"):
            verify_run(both)
    mixed = tmp_path / "mixed"  # recommendations as parts, candidates as one file
    shutil.copytree(run, mixed)
    pq.write_table(pq.read_table(mixed / CANDIDATES_DIR), mixed / CANDIDATES)
    shutil.rmtree(mixed / CANDIDATES_DIR)
    rewrite_manifest(mixed, lambda files: _as_single_file(mixed, files, CANDIDATES))
    with pytest.raises(RunInvalid, match="not in one layout"):
        verify_run(mixed)
    missing = tmp_path / "missing"  # a candidates part gone (from the folder and the manifest)
    shutil.copytree(run, missing)
    (missing / part_name(5, CANDIDATES)).unlink()
    rewrite_manifest(missing, lambda files: files.pop(part_name(5, CANDIDATES)))
    with pytest.raises(RunInvalid, match="not in one layout"):
        verify_run(missing)
    assert (ray_output / LATEST).read_text().strip() == run.name


def _as_single_file(run: Path, files: dict, table: str) -> None:
    """Replace `table`'s part entries of a manifest's `files` by one entry for the single file."""
    for name in [n for n in files if n.startswith(dataset_dir(table) + "/")]:
        del files[name]
    files[table] = {"sha256": sha256_file(run / table), "bytes": (run / table).stat().st_size}


def test_lookup_service_serves_a_ray_run_as_the_local_one(ray_output, local_output, tmp_path):
    """ItemPop gives both executors the same lists, so every endpoint (recommendations with and without
    request-time rules, similar movies, history, the new-user POST, a movie) answers the Ray run's store,
    memory-mapped from the candidate parts and built in memory from them, with the local run's bytes,
    run id aside. The rules reach past the top-N, so the served lists are the 200-deep candidates."""
    ray_run, local_run = latest_run(ray_output), latest_run(local_output)
    parquet_output = tmp_path / "parquet"
    copy_without_serving_arrays(ray_run, parquet_output)
    apps = {
        name: create_app(ServiceSettings(output_dir=out, reload_interval_seconds=0, body_cache_mb=0))
        for name, out in (("local", local_output), ("ray", ray_output), ("ray_parquet", parquet_output))
    }
    stores = {name: app.extensions["ncf"]["holder"].store for name, app in apps.items()}
    assert stores["ray"].memory_mapped and not stores["ray_parquet"].memory_mapped
    assert all(store.depth == 200 for store in stores.values())
    for name in ("offsets", "rec_movie_pos", "rec_scores"):
        assert np.array_equal(getattr(stores["ray"], name), getattr(stores["ray_parquet"], name)), name

    users = [1, 2, 100, 500, 943, 10**6]
    gets = [f"/v1/users/{u}/recommendations{q}" for u in users for q in ("", "?n=5", "?n=20&genre=Horror")]
    gets += [f"/v1/users/{u}/recommendations?n=10&exclude_genre=Drama&year_from=1990" for u in users]
    gets += [f"/v1/users/{u}/history" for u in users]
    gets += [f"/v1/movies/{m}/similar?n=20" for m in (1, 50, 100, 1682)] + ["/v1/movies/50"]
    posts = [{"liked": [1, 50, 181], "n": 10}, {"liked": [1, 50], "n": 10, "genre": "Comedy"}]
    clients = {name: app.test_client() for name, app in apps.items()}
    expected = {url: clients["local"].get(url) for url in gets}
    expected_posts = [clients["local"].post("/v1/recommendations", json=body) for body in posts]
    for name in ("ray", "ray_parquet"):
        for url, want in expected.items():
            got = clients[name].get(url)
            assert got.status_code == want.status_code, (name, url)
            same_run = got.get_data().replace(ray_run.name.encode(), local_run.name.encode())
            assert same_run == want.get_data(), (name, url)
        for body, want in zip(posts, expected_posts, strict=True):
            got = clients[name].post("/v1/recommendations", json=body)
            assert got.status_code == want.status_code == 200, (name, body)
            assert got.get_data().replace(ray_run.name.encode(), local_run.name.encode()) == want.get_data()
        assert clients[name].get("/v1/model").status_code == 200

    top = read_list(ray_run).groupby(USER_ID)[MOVIE_ID].apply(set)
    horror = [clients["ray"].get(f"/v1/users/{u}/recommendations?n=20&genre=Horror").json for u in users[:5]]
    beyond = [
        m["movie_id"]
        for body in horror
        for m in body["recommendations"]
        if m["movie_id"] not in top[body["user_id"]]
    ]
    assert beyond, (
        "the rules never reached past the top-N: the test cannot tell candidates from recommendations"
    )


def test_ray_run_without_refit_gives_the_scoring_pass_full_ranking_figures(ray_cluster, ml100k_dir, tmp_path):
    """No refit: the published model (a small Keras GMF) is the selection model and the Ray actors, which
    the job had prepare the model while it trained, rank the held-out test items from the same scores; the
    figures equal the local executor's."""
    figures = {}
    for executor in ("local", "ray"):
        output = tmp_path / executor
        extra = {**FAST, "model": "gmf", "ncf": {"factors": 8}, "train": {"epochs": 1}}
        extra.update(refit=False, full_validation=False)
        manifest = run_job(settings(ml100k_dir, output, executor=executor, **extra))
        metrics = json.loads((run_dir(output, manifest.run_id) / METRICS).read_text())
        assert metrics["test"]["full"]["from"] == "scoring pass"
        if executor == "ray":
            assert metrics["scoring"]["prepared"] is True
        figures[executor] = {k: metrics["test"]["full"][k] for k in ("hr@10", "ndcg@10")}
    assert figures["ray"] == figures["local"]
    assert 0 < figures["local"]["hr@10"] < 1  # a figure that can tell a wrong rank
