"""The similar-movie and history lists' served arrays (`batch/served_lists.py`): the memory-mapped store
answers byte for byte as the one built from the Parquet, copies none of the lists into the worker, and
refuses inconsistent or corrupt arrays while the old run keeps serving; the writer refuses lists it cannot
lay out."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from synthetic_runs import SIMILAR_K, copy_without_serving_arrays, publish_corrupted, write_run
from test_served_arrays import _app, _edit_array, _is_mapped, _refused_while_the_old_run_serves, _set

from batch.contract import HISTORY, MANIFEST, MOVIES, SIMILAR_MOVIES, RunWriter, run_dir
from batch.served_lists import HISTORY_LISTS, SIMILAR_LISTS, write_list_arrays
from lookup_service.store import load_run

SIMILAR_QUERIES = ["", "?n=2", "?n=3&year_from=1990", "?exclude=6&exclude=9", "?n=0"]


def _write(output_dir: Path, **kwargs) -> str:
    return write_run(output_dir, serving_arrays=True, extras=True, **kwargs)


def test_mapped_lists_answer_byte_for_byte_as_the_parquet_ones(tmp_path):
    run_id = _write(tmp_path / "mapped", seed=4)
    run = run_dir(tmp_path / "mapped", run_id)
    assert (run / SIMILAR_LISTS.file("values")).is_file() and (run / HISTORY_LISTS.file("keys")).is_file()
    copy_without_serving_arrays(run, tmp_path / "parquet")
    mapped_app, parquet_app = _app(tmp_path / "mapped"), _app(tmp_path / "parquet")
    a, b = mapped_app.test_client(), parquet_app.test_client()
    movie_ids = pq.read_table(run / MOVIES).column("movie_id").to_pylist()
    urls = [f"/v1/movies/{m}/similar{q}" for m in [*movie_ids, 10**6] for q in SIMILAR_QUERIES]
    urls += [f"/v1/users/{u}/history" for u in [*range(1, 31), 10**6]]
    urls += ["/v1/users/3/recommendations?genre=Comedy"]
    for url in urls:
        ra, rb = a.get(url), b.get(url)
        assert ra.status_code == rb.status_code and ra.get_data() == rb.get_data(), url
    assert (
        a.post("/v1/recommendations", json={"liked": movie_ids[:3]}).get_data()
        == b.post("/v1/recommendations", json={"liked": movie_ids[:3]}).get_data()
    )
    statuses = {a.get(url).status_code for url in urls}
    assert statuses == {200, 404, 422}  # known and unknown ids and a bad request all compared


def test_a_mapped_store_holds_no_private_copy_of_the_lists(tmp_path):
    store = load_run(run_dir(tmp_path, _write(tmp_path)))
    for array in (store.similar.movie_pos, store.similar.scores):
        assert _is_mapped(array) and not array.flags.writeable
    history = store.history
    for array in (history.users.ids, history.offsets, history.movie_pos, history.timestamps):
        assert _is_mapped(array) and not array.flags.writeable
    assert history.users.dense is None  # users found by binary search over the mapped ids
    assert len(store.similar.offsets) == len(store.movie_index.ids) + 1  # per movie: grows with movies only


def _drop_from_manifest(name: str):
    def apply(run: Path) -> None:
        manifest = json.loads((run / MANIFEST).read_text())
        del manifest["files"][name]
        (run / MANIFEST).write_text(json.dumps(manifest))

    return apply


def _self_similar(array: np.ndarray) -> np.ndarray:
    array[0] = 0  # the first listed movie's first neighbour: itself (movie position 0)
    return array


def _flip_byte(name: str):
    def apply(run: Path) -> None:
        data = bytearray((run / name).read_bytes())
        data[-3] ^= 0x55
        (run / name).write_bytes(bytes(data))

    return apply


S, H = SIMILAR_LISTS.file, HISTORY_LISTS.file
INCONSISTENT = {
    "similar score not finite": (_edit_array(S("values"), _set(4, np.inf)), "scores must be finite"),
    "similar movie past the end": (_edit_array(S("movie_pos"), _set(2, 40)), "positions outside the 40"),
    "a movie similar to itself": (_edit_array(S("movie_pos"), _self_similar), "similar to itself"),
    "more neighbours than similar_k": (
        _edit_array(S("offsets"), _set(1, SIMILAR_K + 1)),
        f"a movie has no rows or more than {SIMILAR_K}",
    ),
    "history users out of order": (_edit_array(H("keys"), lambda a: a[::-1]), "not strictly increasing"),
    "history timestamps as float": (
        _edit_array(H("values"), lambda a: a, np.float64),
        "expected a 1-D int64 array, found float64",
    ),
    "a history array unlisted": (lambda staging: (staging / H("offsets")).unlink(), "but not all of"),
}
CORRUPTED = {
    "flipped byte in similar scores": (_flip_byte(S("values")), "sha256 does not match"),
    "history offsets missing": (lambda run: (run / H("offsets")).unlink(), "missing"),
    "similar keys dropped from the manifest": (_drop_from_manifest(S("keys")), "but not all of"),
}


@pytest.mark.parametrize("name", [*INCONSISTENT, *CORRUPTED])
def test_bad_list_arrays_are_refused_and_the_old_run_keeps_serving(output_dir, caplog, name):
    def publish_bad() -> str:
        if name in INCONSISTENT:
            return _write(output_dir, seed=2, edit_staging=INCONSISTENT[name][0])
        return publish_corrupted(output_dir, CORRUPTED[name][0], seed=2, serving_arrays=True, extras=True)

    reason = {**INCONSISTENT, **CORRUPTED}[name][1]
    _refused_while_the_old_run_serves(output_dir, caplog, publish_bad, reason)


def _writer_with(tmp_path: Path, name: str, table: pa.Table) -> RunWriter:
    writer = RunWriter(tmp_path)
    movies = pa.table(
        {
            "movie_id": pa.array([1, 2, 3], pa.int32()),
            "title": ["a", "b", "c"],
            "year": pa.array([2000, 2001, 2002], pa.int16()),
            "genres": pa.array([[], [], []], pa.list_(pa.string())),
        }
    )
    writer.write_table(MOVIES, movies)
    writer.write_table(name, table)
    return writer


def _similar(movies, ranks, similar, scores) -> pa.Table:
    return pa.table(
        {
            "movie_id": pa.array(movies, pa.int32()),
            "rank": pa.array(ranks, pa.int16()),
            "similar_movie_id": pa.array(similar, pa.int32()),
            "score": pa.array(scores, pa.float32()),
        }
    )


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (_similar([1, 1, 2], [1, 3, 1], [2, 3, 1], [0.9, 0.8, 0.7]), "ranks are not 1..k for every movie_id"),
        (_similar([1, 2], [1, 1], [9, 1], [0.9, 0.7]), "movie ids missing from movies.parquet"),
        (_similar([1, 2], [1, 1], [2, 1], [float("nan"), 0.7]), "scores must be finite"),
    ],
    ids=["rank gap", "unknown movie", "nan score"],
)
def test_the_writer_refuses_lists_it_cannot_lay_out(tmp_path, table, message):
    writer = _writer_with(tmp_path, SIMILAR_MOVIES, table)
    with pytest.raises(ValueError, match=message):
        write_list_arrays(writer, SIMILAR_LISTS)


def test_the_writer_sorts_rows_by_key_and_rank(tmp_path):
    history = pa.table(
        {
            "user_id": pa.array([7, 3, 7, 3], pa.int32()),
            "rank": pa.array([2, 1, 1, 2], pa.int16()),
            "movie_id": pa.array([3, 2, 1, 3], pa.int32()),
            "timestamp": pa.array([10, 40, 20, 30], pa.int64()),
        }
    )
    writer = _writer_with(tmp_path, HISTORY, history)
    write_list_arrays(writer, HISTORY_LISTS)
    arrays = {part: np.load(writer.staging / HISTORY_LISTS.file(part)) for part in ("keys", "offsets")}
    arrays |= {part: np.load(writer.staging / HISTORY_LISTS.file(part)) for part in ("movie_pos", "values")}
    assert arrays["keys"].tolist() == [3, 7] and arrays["offsets"].tolist() == [0, 2, 4]
    assert arrays["movie_pos"].tolist() == [1, 2, 0, 2] and arrays["values"].tolist() == [40, 30, 20, 10]
