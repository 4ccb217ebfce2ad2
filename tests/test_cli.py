"""`python -m batch evaluate` through a real subprocess: JSON shape, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def _run(*args, env=None):
    return subprocess.run([sys.executable, "-m", "batch", *args], capture_output=True, text=True, env=env)


def test_evaluate_json_on_ml100k(ml100k_dir):
    proc = _run("evaluate", "--data-dir", str(ml100k_dir), "--model", "itempop", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert (out["n_users"], out["n_items"], out["n_interactions"]) == (943, 1682, 100_000)
    assert set(out["test"]) == {"sampled", "full"} and set(out["validation"]) == {"sampled", "full"}
    assert out["hr@10"] == out["test"]["sampled"]["hr@10"]
    assert 0.3 < out["hr@10"] < 0.5 and out["ndcg@10"] <= out["hr@10"]
    steps = {"load", "split", "fit", "refit", "evaluate_validation", "evaluate_test"}
    assert steps <= set(out["step_seconds"])
    assert out["refit"] is True and out["training"]["hyperparameters"] == {}


def test_evaluate_validation_full_protocol(fixtures_dir):
    proc = _run(
        "evaluate", "--data-dir", str(fixtures_dir / "ncf"), "--format", "ncf", "--protocol", "full",
        "--model", "itempop", "--split", "validation", "--eval-negatives", "3", "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["protocol"] == "full" and set(out["validation"]) == {"full"}
    assert "test" not in out and "evaluate_test" not in out["step_seconds"] and out["refit"] is False
    assert out["hr@10"] == out["validation"]["full"]["hr@10"]


def test_bad_input_exit_code_names_file_and_line(fixtures_dir, tmp_path):
    import shutil

    data = tmp_path / "dat"
    shutil.copytree(fixtures_dir / "dat", data)
    lines = (data / "ratings.dat").read_text().splitlines()
    lines[4] = "1::7"
    (data / "ratings.dat").write_text("\n".join(lines) + "\n")
    proc = _run("evaluate", "--data-dir", str(data), "--model", "itempop")
    assert proc.returncode == 3
    assert f"{data / 'ratings.dat'}:5: expected 4 fields" in proc.stderr


@pytest.mark.parametrize("args", [["evaluate", "--model", "nope"], ["frobnicate"]])
def test_usage_errors(args):
    assert _run(*args).returncode == 2
