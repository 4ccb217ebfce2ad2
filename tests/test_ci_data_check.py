"""CI cannot pass with the real-data tests skipped: `.ci/run --check-data` refuses missing MovieLens folders,
and with `NCF_REQUIRE_DATA=1` (or `CI=true`) the `ml1m_dir` / `ml100k_dir` fixtures fail instead of skip."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"


def _env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"CI", "NCF_REQUIRE_DATA"}}
    return {**env, **overrides}


def check_data(**overrides: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(ROOT / ".ci" / "run"), "--check-data"],
        env=_env(**overrides),
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_ci_check_passes_with_both_data_folders():
    result = check_data(NCF_DATA_DIR=str(FIXTURES / "dat"), NCF_DATA_DIR_100K=str(FIXTURES / "ml100k"))
    assert result.returncode == 0, result.stderr
    assert f"NCF_DATA_DIR={FIXTURES / 'dat'}" in result.stdout


@pytest.mark.parametrize(
    ("ml1m", "ml100k", "message"),
    [
        ("missing", FIXTURES / "ml100k", "NCF_DATA_DIR={missing} is not a folder"),
        (FIXTURES / "dat", "missing", "NCF_DATA_DIR_100K={missing} is not a folder"),
        (FIXTURES / "csv", FIXTURES / "ml100k", f"NCF_DATA_DIR={FIXTURES / 'csv'} holds no ratings.dat"),
        (FIXTURES / "dat", FIXTURES / "dat", f"NCF_DATA_DIR_100K={FIXTURES / 'dat'} holds no u.data"),
    ],
)
def test_ci_check_fails_on_a_missing_data_folder(tmp_path, ml1m, ml100k, message):
    missing = tmp_path / "nowhere"
    paths = [str(missing) if p == "missing" else str(p) for p in (ml1m, ml100k)]
    result = check_data(NCF_DATA_DIR=paths[0], NCF_DATA_DIR_100K=paths[1])
    assert result.returncode == 1
    assert message.format(missing=missing) in result.stderr


TINY_TEST = """
def test_ml1m(ml1m_dir):
    assert (ml1m_dir / "ratings.dat").is_file()

def test_ml100k(ml100k_dir):
    assert (ml100k_dir / "u.data").is_file()
"""


def run_tiny_suite(tmp_path: Path, **overrides: str) -> subprocess.CompletedProcess:
    """pytest on two tests that use the real-data fixtures, with this project's conftest."""
    suite = tmp_path / "suite"
    suite.mkdir()
    shutil.copy(ROOT / "tests" / "conftest.py", suite / "conftest.py")
    (suite / "test_tiny.py").write_text(TINY_TEST)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-rA",
            "--tb=line",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(suite),
            str(suite),
        ],
        env=_env(**overrides),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=suite,
    )


@pytest.mark.parametrize("required", [{"NCF_REQUIRE_DATA": "1"}, {"CI": "true"}])
def test_required_data_fixtures_fail_instead_of_skipping(tmp_path, required):
    missing = tmp_path / "nowhere"
    result = run_tiny_suite(
        tmp_path, NCF_DATA_DIR=str(missing), NCF_DATA_DIR_100K=str(FIXTURES / "dat"), **required
    )
    summary = result.stdout.strip().splitlines()[-1]
    assert result.returncode == 1, result.stdout
    assert "2 errors" in summary and "skipped" not in summary, summary
    assert f"NCF_DATA_DIR={missing} holds no ratings.dat" in result.stdout
    assert f"NCF_DATA_DIR_100K={FIXTURES / 'dat'} holds no u.data" in result.stdout


def test_data_fixtures_skip_when_not_required(tmp_path):
    result = run_tiny_suite(tmp_path, NCF_DATA_DIR=str(tmp_path / "nowhere"), NCF_DATA_DIR_100K="")
    assert result.returncode == 0, result.stdout
    assert "2 skipped" in result.stdout


def test_data_fixtures_pass_on_the_data(tmp_path):
    result = run_tiny_suite(
        tmp_path, NCF_DATA_DIR=str(FIXTURES / "dat"), NCF_DATA_DIR_100K=str(FIXTURES / "ml100k"), CI="true"
    )
    assert result.returncode == 0, result.stdout
    assert "2 passed" in result.stdout
