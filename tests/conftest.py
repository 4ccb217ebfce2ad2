"""Shared fixtures: tiny data sets of every layout and the real MovieLens copies (via env vars)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def fixtures_dir() -> Path:
    return FIXTURES


def _env_dir(var: str) -> Path:
    value = os.environ.get(var)
    if not value or not Path(value).is_dir():
        pytest.skip(f"{var} is not set to a MovieLens directory")
    return Path(value)


@pytest.fixture(scope="session")
def ml1m_dir() -> Path:
    """MovieLens 1M (`NCF_DATA_DIR`); tests using it are skipped when it is not set."""
    return _env_dir("NCF_DATA_DIR")


@pytest.fixture(scope="session")
def ml100k_dir() -> Path:
    """MovieLens 100K (`NCF_DATA_DIR_100K`); tests using it are skipped when it is not set."""
    return _env_dir("NCF_DATA_DIR_100K")
