"""A manifest cannot make the service read outside its run directory: keys that are absolute, climb with `..`
or lead through a symbolic link refuse the run (the old one keeps serving), and `/readyz` tells clients only
that the newest run failed verification while the log has the details."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from synthetic_runs import publish_corrupted, write_run

from batch.contract import MANIFEST, MOVIES, RunInvalid, run_dir, sha256_file, verify_run
from lookup_service.app import create_app
from lookup_service.reloader import FAILED_VERIFICATION
from lookup_service.settings import ServiceSettings


def _outside(run: Path) -> Path:
    """A file beside the output directory (not under it), its content a copy of the run's movies table."""
    secret = run.parents[2] / "outside" / "secret.parquet"
    secret.parent.mkdir(exist_ok=True)
    shutil.copy(run / MOVIES, secret)
    return secret


def _list_in_manifest(run: Path, key: str, file: Path) -> None:
    """Add `key` to the manifest with the size and checksum of `file`, so only the key itself is wrong."""
    manifest = json.loads((run / MANIFEST).read_text())
    manifest["files"][key] = {"sha256": sha256_file(file), "bytes": file.stat().st_size}
    (run / MANIFEST).write_text(json.dumps(manifest))


def absolute_key(run: Path) -> None:
    secret = _outside(run)
    _list_in_manifest(run, str(secret), secret)


def dotdot_key(run: Path) -> None:
    secret = _outside(run)
    _list_in_manifest(run, f"../../../outside/{secret.name}", secret)


def symlinked_file(run: Path) -> None:
    secret = _outside(run)
    (run / MOVIES).unlink()
    (run / MOVIES).symlink_to(secret)


def symlinked_directory(run: Path) -> None:
    secret = _outside(run)
    (run / "model").symlink_to(secret.parent, target_is_directory=True)
    _list_in_manifest(run, f"model/{secret.name}", secret)


def symlinked_manifest(run: Path) -> None:
    secret = _outside(run).with_name(MANIFEST)
    (run / MANIFEST).rename(secret)
    (run / MANIFEST).symlink_to(secret)


ESCAPES: dict[str, tuple[Callable[[Path], None], str]] = {
    "absolute key": (absolute_key, "is not a plain relative path"),
    "../ key": (dotdot_key, "is not a plain relative path"),
    "symlinked file": (symlinked_file, f"{MOVIES}: a symbolic link"),
    "symlink on the way": (symlinked_directory, "model: a symbolic link"),
    "symlinked manifest": (symlinked_manifest, f"{MANIFEST}: a symbolic link"),
}


@pytest.mark.parametrize("name", ESCAPES)
def test_verify_run_refuses_files_outside_the_run(output_dir, name):
    escape, message = ESCAPES[name]
    run = run_dir(output_dir, write_run(output_dir))
    verify_run(run)
    escape(run)
    with pytest.raises(RunInvalid, match=message):
        verify_run(run)


@pytest.mark.parametrize("name", ESCAPES)
def test_a_run_reaching_outside_is_refused_and_readyz_names_no_path(output_dir, caplog, name):
    escape, message = ESCAPES[name]
    good = write_run(output_dir, seed=1)
    app = create_app(ServiceSettings(output_dir=output_dir, reload_interval_seconds=0))
    client = app.test_client()
    before = client.get("/v1/users/3/recommendations").json
    bad = publish_corrupted(output_dir, escape, seed=2)
    app.extensions["ncf"]["holder"].check()
    after = client.get("/v1/users/3/recommendations")
    assert (after.headers["X-Run-Id"], after.json) == (good, before)
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json == {
        "status": "ready",
        "run_id": good,
        "latest_run_id": bad,
        "refused_run_id": bad,
        "reason": FAILED_VERIFICATION,
    }
    body = ready.get_data(as_text=True)
    assert str(output_dir.parent) not in body and "secret" not in body and "symbolic" not in body
    assert f"refused run {bad}, still serving {good}" in caplog.text and message in caplog.text


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
