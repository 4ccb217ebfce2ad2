"""The job's newer files (candidates, similar movies, history) are held to the contract like the others: a
corrupt or inconsistent one refuses the whole run, and the old run keeps serving."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from synthetic_runs import publish_corrupted, write_run

from batch.contract import CANDIDATES, HISTORY, SIMILAR_MOVIES, RunInvalid, run_dir, verify_run
from lookup_service.app import create_app
from lookup_service.settings import ServiceSettings
from lookup_service.store import load_run


def _flip_a_byte(name: str):
    def corrupt(run: Path) -> None:
        data = bytearray((run / name).read_bytes())
        data[len(data) // 2] ^= 0xFF
        (run / name).write_bytes(bytes(data))

    return corrupt


@pytest.mark.parametrize("name", [CANDIDATES, SIMILAR_MOVIES, HISTORY])
def test_a_corrupt_new_file_refuses_the_run_and_the_old_one_keeps_serving(output_dir, name):
    good = write_run(output_dir, seed=1, extras=True, serving_arrays=True)
    app = create_app(ServiceSettings(output_dir=output_dir, reload_interval_seconds=0))
    client = app.test_client()
    before = client.get("/v1/movies/6/similar?n=3").json
    bad = publish_corrupted(output_dir, _flip_a_byte(name), seed=2, extras=True, serving_arrays=True)
    with pytest.raises(RunInvalid, match=f"{name}: sha256 does not match"):
        verify_run(run_dir(output_dir, bad))
    app.extensions["ncf"]["holder"].check()
    after = client.get("/v1/movies/6/similar?n=3")
    assert after.headers["X-Run-Id"] == good and after.json == before
    assert client.get("/readyz").json["refused_run_id"] == bad


def _rewrite(name: str, transform):
    def edit(staging: Path) -> None:
        pq.write_table(transform(pq.read_table(staging / name)), staging / name)

    return edit


def _column(column: str, values):
    return lambda t: t.set_column(t.schema.get_field_index(column), column, values(t))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            _rewrite(
                SIMILAR_MOVIES, lambda t: t.set_column(0, "movie_id", t.column("movie_id").cast(pa.int64()))
            ),
            "schema",
        ),
        (_rewrite(HISTORY, lambda t: t.drop_columns(["timestamp"])), "schema"),
        (
            _rewrite(SIMILAR_MOVIES, _column("similar_movie_id", lambda t: t.column("movie_id"))),
            "similar to itself",
        ),
        (
            _rewrite(SIMILAR_MOVIES, _column("rank", lambda t: pa.array(np.full(t.num_rows, 2, np.int16)))),
            "ranks are not 1..k",
        ),
        (
            _rewrite(
                SIMILAR_MOVIES,
                _column("similar_movie_id", lambda t: pa.array(np.full(t.num_rows, 7, np.int32))),
            ),
            "movie ids missing",
        ),
        (
            _rewrite(
                SIMILAR_MOVIES, _column("score", lambda t: pa.array(np.full(t.num_rows, np.inf, np.float32)))
            ),
            "finite",
        ),
        (
            _rewrite(HISTORY, _column("movie_id", lambda t: pa.array(np.full(t.num_rows, 7, np.int32)))),
            "movie ids missing",
        ),
        (
            _rewrite(CANDIDATES, _column("rank", lambda t: pa.array(np.full(t.num_rows, 1, np.int16)))),
            "ranks are not 1..k",
        ),
    ],
)
def test_new_files_that_break_the_contract_refuse_the_run(output_dir, edit, message):
    run_id = write_run(output_dir, extras=True, edit_staging=edit)
    with pytest.raises(RunInvalid, match=message):
        load_run(run_dir(output_dir, run_id))


def test_a_list_longer_than_the_manifest_allows_is_refused(output_dir):
    def deeper(staging: Path) -> None:
        table = pq.read_table(staging / HISTORY)
        first = table.filter(pc.equal(table.column("user_id"), 1))
        extra = first.slice(0, 1).set_column(1, "rank", pa.array([first.num_rows + 1], pa.int16()))
        pq.write_table(pa.concat_tables([table, extra]), staging / HISTORY)

    run_id = write_run(output_dir, extras=True, edit_staging=deeper)
    with pytest.raises(RunInvalid, match="the manifest allows 4"):
        load_run(run_dir(output_dir, run_id))
