"""Fixtures of the lookup service tests: an output directory with one small published run, and the app.

The run carries every file the current job writes (candidates, similar movies, history) and the served
arrays (memory-mapped by the service) unless a module overrides `served_from` (test_api.py runs every test
on both kinds of run)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from synthetic_runs import write_run

from lookup_service.app import create_app
from lookup_service.settings import ServiceSettings


@pytest.fixture
def output_dir(tmp_path: Path) -> Path:
    path = tmp_path / "output"
    path.mkdir()
    return path


@pytest.fixture
def served_from() -> str:
    """Which store serves the run: "mapped" (it has served arrays, as the job writes it) or "parquet"
    (it has none, as a run of an older job)."""
    return "mapped"


@pytest.fixture
def run_id(output_dir: Path, served_from: str) -> str:
    return write_run(output_dir, serving_arrays=served_from == "mapped", extras=True)


@pytest.fixture
def app(output_dir: Path, run_id: str):
    return create_app(ServiceSettings(output_dir=output_dir, reload_interval_seconds=0))


@pytest.fixture
def client(app):
    return app.test_client()
