"""Fixtures of the lookup service tests: an output directory with one small published run, and the app."""

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
def run_id(output_dir: Path) -> str:
    return write_run(output_dir)


@pytest.fixture
def app(output_dir: Path, run_id: str):
    return create_app(ServiceSettings(output_dir=output_dir, reload_interval_seconds=0))


@pytest.fixture
def client(app):
    return app.test_client()
