"""The served arrays (`batch/serving_arrays.py`) and the memory-mapped store: the same bytes as the store
built from the Parquet for every user, nothing per user copied into the worker, corrupt or inconsistent
arrays refused while the old run keeps serving, hot reload between runs with and without them, and the
writer's refusals."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from synthetic_runs import copy_without_serving_arrays, publish_corrupted, write_run

from batch.contract import MOVIES, RECOMMENDATIONS, RunWriter, read_latest, run_dir
from batch.serving_arrays import LAYOUT, MOVIE_POS, OFFSETS, SCORES, USER_IDS, write_serving_arrays
from lookup_service.app import create_app
from lookup_service.reloader import FAILED_VERIFICATION, RunHolder
from lookup_service.settings import ServiceSettings
from lookup_service.store import RunStore, load_run

REPO = Path(__file__).resolve().parents[2]
QUERIES = ["?n=1", "?n=7", "", "?n=20", "?n=20&fallback=popular"]


def _app(output_dir: Path):
    return create_app(ServiceSettings(output_dir=output_dir, reload_interval_seconds=0, body_cache_mb=0))


def _assert_same_responses(mapped_dir: Path, parquet_dir: Path, user_ids: list[int], queries: list[str]):
    """Both apps answer every user (and an unknown one) with the same status, headers that matter and
    body bytes; returns the two stores."""
    mapped_app, parquet_app = _app(mapped_dir), _app(parquet_dir)
    mapped = mapped_app.extensions["ncf"]["holder"].store
    parquet = parquet_app.extensions["ncf"]["holder"].store
    assert (mapped.memory_mapped, parquet.memory_mapped) == (True, False)
    assert mapped.run_id == parquet.run_id
    a, b = mapped_app.test_client(), parquet_app.test_client()
    for user_id in [*user_ids, 10**6]:
        for query in queries:
            url = f"/v1/users/{user_id}/recommendations{query}"
            ra, rb = a.get(url), b.get(url)
            assert (ra.status_code, ra.headers["X-Run-Id"]) == (rb.status_code, rb.headers["X-Run-Id"])
            assert ra.get_data() == rb.get_data(), url
    return mapped, parquet


def test_mapped_and_in_memory_stores_answer_byte_for_byte_the_same(tmp_path):
    """Users with fewer rows than top_n and users split across row groups included."""
    run_id = write_run(tmp_path / "mapped", serving_arrays=True, ragged=True, row_group_size=7, seed=5)
    copy_without_serving_arrays(run_dir(tmp_path / "mapped", run_id), tmp_path / "parquet")
    mapped, parquet = _assert_same_responses(
        tmp_path / "mapped", tmp_path / "parquet", list(range(1, 31)), QUERIES
    )
    for name in ("offsets", "rec_movie_pos", "rec_scores"):
        assert np.array_equal(getattr(mapped, name), getattr(parquet, name)), name
        assert getattr(mapped, name).dtype == getattr(parquet, name).dtype, name
    assert np.array_equal(mapped.users.ids, parquet.users.ids)
    assert len(set(np.diff(mapped.offsets).tolist())) == 3  # ragged: 20, 19 and 18 rows


def test_ml100k_job_run_answers_the_same_mapped_and_from_parquet(tmp_path, ml100k_dir):
    """A real `ncf-batch run` (ItemPop, seconds) on ML-100K: its served arrays give every one of the 943
    users the same bytes as its Parquet."""
    output = tmp_path / "mapped"
    flags = f"--data-dir {ml100k_dir} --output-dir {output} --model itempop --chunk-users 300".split()
    proc = subprocess.run(
        [sys.executable, "-m", "batch", "run", *flags, "--gate-floors", '{"ml-100k": 0.3}'],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = run_dir(output, read_latest(output))
    assert (run / MOVIE_POS).is_file()
    copy_without_serving_arrays(run, tmp_path / "parquet")
    mapped, _ = _assert_same_responses(output, tmp_path / "parquet", list(range(1, 944)), ["", "?n=50"])
    assert len(mapped.users.ids) == 943 and len(mapped.rec_scores) == 943 * 200  # candidates, 200 deep
    # the similar-movie and history lists, mapped from their own served arrays, answer the same too
    a, b = _app(output).test_client(), _app(tmp_path / "parquet").test_client()
    urls = [f"/v1/movies/{m}/similar?n=20" for m in range(1, 1683, 7)]
    urls += [f"/v1/users/{u}/history" for u in range(1, 944, 5)]
    for url in urls:
        ra, rb = a.get(url), b.get(url)
        assert ra.status_code == rb.status_code == 200 and ra.get_data() == rb.get_data(), url


def _is_mapped(array: np.ndarray) -> bool:
    base = array
    while base is not None and not isinstance(base, np.memmap):
        base = base.base
    return base is not None


def test_a_mapped_store_copies_nothing_per_user(tmp_path):
    run_id = write_run(tmp_path, serving_arrays=True)
    store = load_run(run_dir(tmp_path, run_id))
    for array in (store.users.ids, store.offsets, store.rec_movie_pos, store.rec_scores):
        assert _is_mapped(array) and not array.flags.writeable
    assert store.users.dense is None  # found by binary search over the mapped ids
    ranked = store.for_user(3)
    assert _is_mapped(ranked.movie_pos) and _is_mapped(ranked.scores)
    assert [store.users.position(u) for u in (1, 30, 31, 0, -4)] == [0, 29, -1, -1, -1]


def _edit_array(name: str, edit, dtype=None):
    """An edit to one staged served array, made before the manifest is written (checksums match)."""

    def apply(staging: Path) -> None:
        array = np.load(staging / name)
        array = edit(array.copy())
        np.save(staging / name, array if dtype is None else array.astype(dtype))

    return apply


def _set(index, value):
    def edit(array):
        array[index] = value
        return array

    return edit


def _truncate_staged(name: str):
    def apply(staging: Path) -> None:
        data = (staging / name).read_bytes()
        (staging / name).write_bytes(data[: len(data) - 40])

    return apply


def _object_array(staging: Path) -> None:
    np.save(staging / SCORES, np.array([0.5, "x"], dtype=object), allow_pickle=True)


def _drop_last_row(staging: Path) -> None:
    for name in (MOVIE_POS, SCORES):
        np.save(staging / name, np.load(staging / name)[:-1])
    offsets = np.load(staging / OFFSETS)
    offsets[-1] -= 1
    np.save(staging / OFFSETS, offsets)


def _unlist_scores(staging: Path) -> None:
    (staging / SCORES).unlink()


# Served arrays whose manifest matches (so only the content checks can catch them), with the refusal.
INCONSISTENT = {
    "nan score": (_edit_array(SCORES, _set(5, np.nan)), "scores must be finite"),
    "movie position past the end": (_edit_array(MOVIE_POS, _set(3, 40)), "positions outside the 40"),
    "negative movie position": (_edit_array(MOVIE_POS, _set(-1, -1)), "positions outside"),
    "more rows than top_n": (_edit_array(OFFSETS, _set(1, 21)), "a user has no rows or more than 20"),
    "a user without rows": (_edit_array(OFFSETS, _set(2, 20)), "a user has no rows"),
    "user ids out of order": (_edit_array(USER_IDS, lambda a: a[::-1]), "not strictly increasing"),
    "float32 scores": (
        _edit_array(SCORES, lambda a: a, np.float32),
        "expected a 1-D float64 array, found float32",
    ),
    "two-dimensional": (
        _edit_array(MOVIE_POS, lambda a: a.reshape(-1, 2)),
        "expected a 1-D int32 array, found int32 (300, 2)",
    ),
    "truncated npy": (_truncate_staged(MOVIE_POS), "not a mappable .npy file"),
    "pickled objects": (_object_array, "not a mappable .npy file"),
    "fewer rows than the parquet": (_drop_last_row, f"rows in {RECOMMENDATIONS}"),
    "one array unlisted": (_unlist_scores, "but not all of"),
}


def _flip_scores_byte(run: Path) -> None:
    data = bytearray((run / SCORES).read_bytes())
    data[len(data) // 2] ^= 0x55
    (run / SCORES).write_bytes(bytes(data))


def _truncate_movie_pos(run: Path) -> None:
    data = (run / MOVIE_POS).read_bytes()
    (run / MOVIE_POS).write_bytes(data[: len(data) // 2])


def _delete_offsets(run: Path) -> None:
    (run / OFFSETS).unlink()


# Served arrays damaged after publishing (checksums no longer match), with the refusal.
CORRUPTED = {
    "flipped byte in scores": (_flip_scores_byte, "sha256 does not match"),
    "truncated movie positions": (_truncate_movie_pos, "bytes, manifest says"),
    "deleted offsets": (_delete_offsets, f"{OFFSETS}: missing"),
}


def _refused_while_the_old_run_serves(output_dir: Path, caplog, publish_bad, reason: str) -> None:
    good = write_run(output_dir, seed=1, serving_arrays=True)
    app = _app(output_dir)
    client = app.test_client()
    before = client.get("/v1/users/3/recommendations").get_data()
    bad = publish_bad()
    app.extensions["ncf"]["holder"].check()
    after = client.get("/v1/users/3/recommendations")
    assert after.headers["X-Run-Id"] == good and after.get_data() == before
    ready = client.get("/readyz").json
    assert (ready["run_id"], ready["refused_run_id"], ready["reason"]) == (good, bad, FAILED_VERIFICATION)
    assert f"refused run {bad}, still serving {good}" in caplog.text
    assert reason in caplog.text


def _published_bad(output_dir: Path, name: str) -> str:
    """Publish the bad run `name` of INCONSISTENT (edited before the manifest) or CORRUPTED (after)."""
    if name in INCONSISTENT:
        return write_run(output_dir, seed=2, serving_arrays=True, edit_staging=INCONSISTENT[name][0])
    return publish_corrupted(output_dir, CORRUPTED[name][0], seed=2, serving_arrays=True)


@pytest.mark.parametrize("name", [*INCONSISTENT, *CORRUPTED])
def test_bad_served_arrays_are_refused_and_the_old_run_keeps_serving(output_dir, caplog, name):
    reason = {**INCONSISTENT, **CORRUPTED}[name][1]
    _refused_while_the_old_run_serves(output_dir, caplog, lambda: _published_bad(output_dir, name), reason)


def test_hot_reload_between_runs_with_and_without_served_arrays(output_dir):
    app = _app(output_dir)
    holder: RunHolder = app.extensions["ncf"]["holder"]
    client = app.test_client()
    served: list[tuple[str, bool, bytes]] = []
    for seed, with_arrays in [(1, True), (2, False), (3, True)]:
        run_id = write_run(output_dir, seed=seed, serving_arrays=with_arrays)
        holder.check()
        response = client.get("/v1/users/3/recommendations?n=20")
        assert response.headers["X-Run-Id"] == run_id and holder.store.run_id == run_id
        served.append((run_id, holder.store.memory_mapped, response.get_data()))
        assert holder.status.refused_run_id is None
    assert [mapped for _, mapped, _ in served] == [True, False, True]
    assert len({body for _, _, body in served}) == 3
    # each answer is the one a fresh load of its run gives
    for run_id, _, body in served:
        fresh = load_run(run_dir(output_dir, run_id))
        assert _body(fresh, 3, 20) == body


def _body(store: RunStore, user_id: int, n: int) -> bytes:
    from lookup_service.render import recommendations_json

    ranked = store.for_user(user_id)
    return recommendations_json(
        user_id, store.run_id, "model", store.movie_fragments, ranked.movie_pos[:n], ranked.scores[:n]
    )


def _writer_with(tmp_path: Path, recs: pa.Table) -> RunWriter:
    from synthetic_runs import movies_table

    writer = RunWriter(tmp_path)
    writer.write_table(MOVIES, movies_table())
    writer.write_table(RECOMMENDATIONS, recs, row_group_size=5)
    return writer


def _recs(users, ranks, movies, scores=None) -> pa.Table:
    return pa.table(
        {
            "user_id": pa.array(users, pa.int32()),
            "rank": pa.array(ranks, pa.int16()),
            "movie_id": pa.array(movies, pa.int32()),
            "score": pa.array(scores or [0.5] * len(users), pa.float32()),
        }
    )


@pytest.mark.parametrize(
    ("recs", "message"),
    [
        (_recs([1, 1, 2, 2], [2, 1, 1, 2], [3, 6, 9, 12]), "not sorted"),
        (_recs([2, 2, 1, 1], [1, 2, 1, 2], [3, 6, 9, 12]), "not sorted"),
        (_recs([1, 1, 2, 2, 2], [1, 2, 1, 3, 4], [3, 6, 9, 12, 15]), "not sorted"),
        (_recs([1, 1, 1, 1, 1, 1, 1], [1, 2, 3, 4, 5, 6, 6], [3] * 7), "not sorted"),  # across row groups
        (_recs([1, 1, 2], [1, 2, 1], [3, 7, 9]), "movie ids missing"),
        (_recs([1, 1, 2], [1, 2, 1], [3, 6, 9], [0.5, float("inf"), 0.1]), "scores must be finite"),
    ],
)
def test_the_writer_refuses_recommendations_it_cannot_lay_out(tmp_path, recs, message):
    writer = _writer_with(tmp_path, recs)
    with pytest.raises(ValueError, match=message):
        write_serving_arrays(writer)


def test_the_writer_lays_out_users_split_across_row_groups(tmp_path):
    users = [4] * 7 + [9] * 3 + [12] * 6  # row groups of 5 rows: users 4 and 12 span two
    ranks = [1, 2, 3, 4, 5, 6, 7, 1, 2, 3, 1, 2, 3, 4, 5, 6]
    movies = (np.arange(16) % 40 + 1) * 3
    scores = np.linspace(0.9, 0.1, 16, dtype=np.float32).tolist()
    writer = _writer_with(tmp_path, _recs(users, ranks, movies.tolist(), scores))
    write_serving_arrays(writer)
    arrays = {name: np.load(writer.path(name), allow_pickle=False) for name in LAYOUT}
    assert {name: a.dtype for name, a in arrays.items()} == LAYOUT
    assert arrays[USER_IDS].tolist() == [4, 9, 12]
    assert arrays[OFFSETS].tolist() == [0, 7, 10, 16]
    assert arrays[MOVIE_POS].tolist() == (movies // 3 - 1).tolist()  # movies.parquet ids are 3, 6, 9, ...
    assert arrays[SCORES].astype(np.float32).tolist() == np.array(scores, np.float32).tolist()
    assert float(arrays[SCORES][1]) == 0.846666694  # the float32's 9-significant-digit decimal
