"""bench/blend_validation.py's pieces that need no data: the selection rule and the stored-rows scorer."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def script():
    sys.path.insert(0, str(ROOT / "bench"))  # the script imports bench/neumf_validation.py by name
    try:
        spec = importlib.util.spec_from_file_location(
            "blend_validation", ROOT / "bench" / "blend_validation.py"
        )
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(ROOT / "bench"))
    return module


def test_the_rule_is_the_worst_relative_margin_over_the_goal_figures(script):
    ials = {"sampled.hr@10": 0.8, "sampled.ndcg@10": 0.5}
    ease = {"full.hr@10": 0.2, "full.ndcg@10": 0.1}
    means = {"sampled.hr@10": 0.84, "sampled.ndcg@10": 0.5, "full.hr@10": 0.19, "full.ndcg@10": 0.11}
    assert script.criterion(means, {"sampled": ials, "full": ease}) == pytest.approx(-0.05)  # full HR@10


def test_stored_rows_serve_the_rows_of_their_users(script):
    rows = np.arange(12, dtype=np.float32).reshape(3, 4)
    stored = script.StoredRows(np.array([5, 2, 9]), rows)
    np.testing.assert_array_equal(stored.score_users(np.array([9, 5])), rows[[2, 0]])
    np.testing.assert_array_equal(stored.score(np.array([2, 9]), np.array([3, 0])), [7.0, 8.0])
