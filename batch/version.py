"""The code version recorded in each run's manifest: `git describe` when run from a checkout, else the
installed package version."""

from __future__ import annotations

import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

PACKAGE = "ncf-recommender"


def code_version() -> str:
    """e.g. `6e62208-dirty` (git) or `0.1.0` (package metadata) or `unknown`."""
    try:
        described = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--tags"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        if described:
            return described
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        return version(PACKAGE)
    except PackageNotFoundError:
        return "unknown"
