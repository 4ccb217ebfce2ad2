"""A manifest cannot make the service read outside its run directory: keys that are absolute, climb with `..`
or lead through a symbolic link refuse the run (`synthetic_runs.ESCAPES`; test_store_and_reload checks that
the old run keeps serving and `/readyz` names no path)."""

from __future__ import annotations

from pathlib import Path

import pytest
from synthetic_runs import ESCAPES, write_run

from batch.contract import RunInvalid, run_dir, verify_run
from lookup_service.app import create_app
from lookup_service.settings import ServiceSettings


@pytest.mark.parametrize("name", ESCAPES)
def test_verify_run_refuses_files_outside_the_run(output_dir, name):
    escape, message = ESCAPES[name]
    run = run_dir(output_dir, write_run(output_dir))
    verify_run(run)
    escape(run)
    with pytest.raises(RunInvalid, match=message):
        verify_run(run)


def test_readyz_before_a_run_names_no_path(output_dir):
    client = create_app(ServiceSettings(output_dir=output_dir, reload_interval_seconds=0)).test_client()
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert str(output_dir) not in ready.get_data(as_text=True)


def test_nested_plain_keys_are_still_accepted(output_dir):
    def add_model_file(staging: Path) -> None:
        (staging / "model" / "weights").mkdir(parents=True)
        (staging / "model" / "weights" / "w.npz").write_bytes(b"weights")

    run = run_dir(output_dir, write_run(output_dir, edit_staging=add_model_file))
    assert "model/weights/w.npz" in verify_run(run).files
