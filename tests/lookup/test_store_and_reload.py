"""The compact run store, and reloading: new runs swap in atomically, bad runs are refused while the old one
keeps serving."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from synthetic_runs import ESCAPES, point_latest, publish_corrupted, write_run

from batch.contract import MANIFEST, MOVIES, POPULAR, RECOMMENDATIONS, RunInvalid, run_dir
from batch.serving_arrays import short_float32
from lookup_service.app import create_app
from lookup_service.body_cache import ENTRY_OVERHEAD_BYTES, BodyCache
from lookup_service.reloader import FAILED_VERIFICATION, Reloader, RunHolder
from lookup_service.render import score_texts
from lookup_service.schemas import RecommendedMovie
from lookup_service.settings import ServiceSettings
from lookup_service.store import IdIndex, load_run


@pytest.mark.parametrize(
    "ids", [np.array([2, 5, 9, 40]), np.array([3, 10**9, 2 * 10**9]), np.array([-5, 2, 8])]
)
def test_id_index_finds_known_ids_and_rejects_others(ids):
    index = IdIndex(ids)
    assert (index.dense is not None) == (ids.min() >= 0 and ids.max() < 10**6)
    assert [index.position(int(i)) for i in ids] == list(range(len(ids)))
    for unknown in (0, 1, 4, int(ids.max()) + 1, -7, -1):
        assert index.position(unknown) == -1
    assert index.positions(np.array([ids[1], 4, ids[0]])).tolist() == [1, -1, 0]


def test_load_run_keeps_compact_arrays_in_rank_order(output_dir):
    users = np.array([4, 9, 100], dtype=np.int32)
    run_id = write_run(output_dir, user_ids=users, top_n=6)
    store = load_run(run_dir(output_dir, run_id))
    assert store.offsets.tolist() == [0, 6, 12, 18]
    assert store.rec_movie_pos.dtype == np.int32 and store.rec_scores.dtype == np.float64
    recs = pq.read_table(run_dir(output_dir, run_id) / RECOMMENDATIONS).to_pandas()
    for user in users:
        expected = recs[recs.user_id == user].sort_values("rank")
        ranked = store.for_user(int(user))
        assert [store.movies[p]["movie_id"] for p in ranked.movie_pos] == expected.movie_id.tolist()
        assert np.all(np.diff(ranked.scores) <= 0)
    assert store.for_user(5) is None


def _rewrite(name: str, transform):
    """An edit to a staged table, made before the manifest is written (checksums match the bad content)."""

    def edit(staging: Path) -> None:
        table = pq.read_table(staging / name)
        pq.write_table(transform(table), staging / name)

    return edit


def _constant(column: str, value: int, dtype):
    return lambda t: t.set_column(
        t.schema.get_field_index(column), column, pa.array(np.full(t.num_rows, value, dtype))
    )


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_rewrite(RECOMMENDATIONS, _constant("rank", 2, np.int16)), "ranks are not 1..k"),
        (_rewrite(RECOMMENDATIONS, _constant("movie_id", 7, np.int32)), "movie ids missing"),
        (_rewrite(MOVIES, lambda t: pa.concat_tables([t, t.slice(0, 1)])), "duplicate movie_id"),
        (_rewrite(POPULAR, lambda t: t.slice(0, 0)), "empty"),
        (_rewrite(RECOMMENDATIONS, _constant("score", np.nan, np.float32)), "scores must be finite"),
    ],
)
def test_load_run_refuses_content_that_breaks_the_contract(output_dir, edit, message):
    run_id = write_run(output_dir, edit_staging=edit)
    with pytest.raises(RunInvalid, match=message):
        load_run(run_dir(output_dir, run_id))


def _flip_a_byte(run: Path) -> None:
    data = bytearray((run / RECOMMENDATIONS).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (run / RECOMMENDATIONS).write_bytes(bytes(data))


def _delete_movies(run: Path) -> None:
    (run / MOVIES).unlink()


def _truncate_popular(run: Path) -> None:
    data = (run / POPULAR).read_bytes()
    (run / POPULAR).write_bytes(data[: len(data) // 2])


def _truncate_recommendations_with_matching_manifest(staging: Path) -> None:
    data = (staging / RECOMMENDATIONS).read_bytes()
    (staging / RECOMMENDATIONS).write_bytes(data[: len(data) // 2])


def _bad_manifest(run: Path) -> None:
    (run / MANIFEST).write_text(json.dumps({"run_id": "x"}))


CORRUPTIONS = {
    "bad checksum": (_flip_a_byte, "sha256 does not match"),
    "missing file": (_delete_movies, "missing"),
    "truncated parquet": (_truncate_popular, "bytes, manifest says"),
    "invalid manifest": (_bad_manifest, "invalid manifest"),
}


@pytest.mark.parametrize("name", [*CORRUPTIONS, *ESCAPES])
def test_a_corrupted_run_is_refused_and_the_old_one_keeps_serving(output_dir, caplog, name):
    """Refused while the old run serves; /readyz says so in general terms (no path), the log in detail."""
    corrupt, reason = {**CORRUPTIONS, **ESCAPES}[name]
    good = write_run(output_dir, seed=1)
    app = create_app(ServiceSettings(output_dir=output_dir, reload_interval_seconds=0))
    client = app.test_client()
    before = client.get("/v1/users/3/recommendations").json
    bad = publish_corrupted(output_dir, corrupt, seed=2)
    app.extensions["ncf"]["holder"].check()
    after = client.get("/v1/users/3/recommendations")
    assert after.headers["X-Run-Id"] == good
    assert after.json == before
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json == {
        "status": "ready",
        "run_id": good,
        "latest_run_id": bad,
        "refused_run_id": bad,
        "reason": FAILED_VERIFICATION,
    }
    assert str(output_dir.parent) not in ready.get_data(as_text=True)
    assert f"refused run {bad}, still serving {good}" in caplog.text
    assert reason in caplog.text


def test_a_truncated_parquet_whose_manifest_matches_is_refused(output_dir, caplog):
    good = write_run(output_dir, seed=1)
    holder = RunHolder(output_dir)
    holder.check()
    bad = write_run(
        output_dir, seed=2, edit_staging=lambda s: _truncate_recommendations_with_matching_manifest(s)
    )
    holder.check()
    assert holder.store.run_id == good
    assert holder.status.refused_run_id == bad
    assert "parquet" in caplog.text.lower()


def test_latest_naming_a_path_outside_runs_is_refused(output_dir):
    write_run(output_dir)
    holder = RunHolder(output_dir)
    holder.check()
    point_latest(output_dir, "../../etc")
    holder.check()
    assert holder.status.refused_run_id == "../../etc"
    assert "invalid run id" in holder.status.reason


def test_a_new_run_swaps_in_and_in_flight_references_keep_the_old_store(output_dir):
    first = write_run(output_dir, seed=1)
    holder = RunHolder(output_dir)
    holder.check()
    in_flight = holder.store
    old_list = in_flight.for_user(3).movie_pos.copy()
    second = write_run(output_dir, seed=2)
    holder.check()
    assert holder.store.run_id == second
    assert in_flight.run_id == first
    assert np.array_equal(in_flight.for_user(3).movie_pos, old_list)
    assert holder.status.refused_run_id is None


def test_a_refused_run_is_not_retried_until_latest_changes(output_dir, monkeypatch):
    write_run(output_dir, seed=1)
    holder = RunHolder(output_dir)
    holder.check()
    publish_corrupted(output_dir, _flip_a_byte, seed=2)
    holder.check()
    loads = []
    monkeypatch.setattr("lookup_service.reloader.load_run", lambda path: loads.append(path))
    holder.check()
    assert loads == []
    fixed = write_run(output_dir, seed=3)
    monkeypatch.undo()
    holder.check()
    assert holder.store.run_id == fixed
    assert holder.status.refused_run_id is None


def test_the_reloader_thread_picks_up_a_new_run(output_dir):
    write_run(output_dir, seed=1)
    app = create_app(ServiceSettings(output_dir=output_dir, reload_interval_seconds=0.05))
    reloader: Reloader = app.extensions["ncf"]["reloader"]
    try:
        second = write_run(output_dir, seed=2)
        client = app.test_client()
        for _ in range(200):
            if client.get("/readyz").json["run_id"] == second:
                break
            reloader._stop.wait(0.05)
        assert client.get("/v1/users/3/recommendations").headers["X-Run-Id"] == second
    finally:
        reloader.stop()


def test_service_becomes_ready_when_the_first_run_is_published(output_dir):
    holder = RunHolder(output_dir)
    holder.check()
    assert holder.store is None
    run_id = write_run(output_dir)
    holder.check()
    assert holder.store.run_id == run_id


def test_short_float32_keeps_every_float32_value_exactly():
    rng = np.random.default_rng(0)
    scores = np.concatenate(
        [
            rng.random(20_000, dtype=np.float32),
            (rng.standard_normal(20_000) * 10.0 ** rng.integers(-12, 12, 20_000)).astype(np.float32),
            np.array([0.0, -0.0, 1.0, -3.5, 1e-38, 3e38], dtype=np.float32),
        ]
    )
    short = short_float32(scores)
    assert short.dtype == np.float64
    assert np.array_equal(short.astype(np.float32), scores)
    usual = short[(np.abs(scores) >= 1e-6) & (np.abs(scores) <= 1e6)]  # probabilities, logits, counts
    digits = [repr(x).split("e")[0].replace(".", "").strip("-0") for x in usual.tolist()]
    assert len(usual) > 20_000 and max(len(d) for d in digits) <= 9


def test_score_texts_are_the_json_numbers_pydantic_writes():
    """Small and huge magnitudes included: there Python's repr (1e-07, 1.5e-05) and pydantic (1e-7, 0.000015)
    differ, and responses must be what `RecommendationsResponse.model_dump_json()` writes."""
    raw = [0.0, -0.0, 1.0, 0.5, 0.850624204, 1e-7, 1.5e-5, 1e-4, 123456789.0, 1e16, 3.4e38, -2.5, 1e-300]
    scores = np.concatenate([raw, short_float32(np.random.default_rng(0).random(1000, dtype=np.float32))])
    texts = score_texts(scores)
    movie = {"movie_id": 1, "title": "t", "year": None, "genres": []}
    expected = [
        RecommendedMovie(**movie, rank=1, score=s).model_dump_json().rsplit(":", 1)[1][:-1].encode()
        for s in scores.tolist()
    ]
    assert texts == expected
    assert [float(t) for t in texts] == scores.tolist()
    assert score_texts(np.empty(0)) == []


def _many_row_groups(staging: Path) -> None:
    table = pq.read_table(staging / RECOMMENDATIONS)
    pq.write_table(table, staging / RECOMMENDATIONS, row_group_size=7)


def test_a_run_written_in_many_row_groups_loads_the_same(tmp_path):
    one = write_run(tmp_path / "one", seed=4)
    many = write_run(tmp_path / "many", seed=4, edit_staging=_many_row_groups)
    assert pq.ParquetFile(run_dir(tmp_path / "many", many) / RECOMMENDATIONS).metadata.num_row_groups > 10
    a, b = load_run(run_dir(tmp_path / "one", one)), load_run(run_dir(tmp_path / "many", many))
    assert np.array_equal(a.offsets, b.offsets)
    assert np.array_equal(a.rec_movie_pos, b.rec_movie_pos)
    assert np.array_equal(a.rec_scores, b.rec_scores)


def test_body_cache_is_bounded_and_evicts_the_oldest_first():
    cache = BodyCache(max_bytes=3 * (100 + ENTRY_OVERHEAD_BYTES))
    for key in range(5):
        cache.put(key, bytes(100))
    assert len(cache) == 3 and cache.bytes <= cache.max_bytes
    assert [cache.get(k) for k in range(5)] == [None, None, bytes(100), bytes(100), bytes(100)]
    cache.put("big", bytes(cache.max_bytes))  # larger than the whole budget: not kept, nothing evicted
    assert cache.get("big") is None and len(cache) == 3
    off = BodyCache(max_bytes=0)
    off.put(1, b"{}")
    assert off.get(1) is None and len(off) == 0


def test_a_reload_drops_the_rendered_bodies_with_the_old_store(output_dir):
    first = write_run(output_dir, seed=1)
    app = create_app(ServiceSettings(output_dir=output_dir, reload_interval_seconds=0))
    holder: RunHolder = app.extensions["ncf"]["holder"]
    client = app.test_client()
    old_body = client.get("/v1/users/3/recommendations?n=5").get_data()
    old_store = holder.store
    assert old_store.bodies.get((3, 5)) == old_body
    second = write_run(output_dir, seed=2)
    holder.check()
    assert holder.store.run_id == second and len(holder.store.bodies) == 0
    response = client.get("/v1/users/3/recommendations?n=5")
    assert response.headers["X-Run-Id"] == second
    body = response.json
    assert body["run_id"] == second
    new = holder.store.for_user(3)
    assert [r["movie_id"] for r in body["recommendations"]] == [
        holder.store.movies[p]["movie_id"] for p in new.movie_pos[:5].tolist()
    ]
    assert response.get_data() != old_body and json.loads(old_body)["run_id"] == first
    assert holder.store.bodies.get((3, 5)) == response.get_data()
