"""Shared fixtures: tiny data sets of every layout and the real MovieLens copies (via env vars).

The real-data fixtures skip when their variable is unset or wrong, except where the data is required
(`NCF_REQUIRE_DATA=1`, or `CI=true` as CI services set it): there they fail, so a suite cannot pass with
every real-data test skipped.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def fixtures_dir() -> Path:
    return FIXTURES


def data_required() -> bool:
    """True when missing MovieLens data must fail the real-data tests rather than skip them."""
    return os.environ.get("NCF_REQUIRE_DATA") == "1" or os.environ.get("CI", "").lower() == "true"


def _env_dir(var: str, marker: str) -> Path:
    value = os.environ.get(var)
    if value and (Path(value) / marker).is_file():
        return Path(value)
    problem = f"{var} is not set" if not value else f"{var}={value} holds no {marker}"
    if data_required():
        pytest.fail(f"{problem}; the MovieLens data is required here (NCF_REQUIRE_DATA=1 or CI=true)")
    pytest.skip(f"{problem}: not a MovieLens directory")


@pytest.fixture(scope="session")
def ml1m_dir() -> Path:
    """MovieLens 1M (`NCF_DATA_DIR`, holding ratings.dat); skipped when absent unless `data_required()`."""
    return _env_dir("NCF_DATA_DIR", "ratings.dat")


@pytest.fixture(scope="session")
def ml100k_dir() -> Path:
    """MovieLens 100K (`NCF_DATA_DIR_100K`, holding u.data); skipped when absent unless `data_required()`."""
    return _env_dir("NCF_DATA_DIR_100K", "u.data")
