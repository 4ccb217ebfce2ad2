"""Smoke run of bench/leaderboard.py on ML-100K (defaults only, two quick models): it writes the JSON,
Markdown and PNG with measured figures. Needs NCF_DATA_DIR_100K; skipped when unset."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_leaderboard_writes_its_three_files(tmp_path, ml100k_dir):
    cmd = [sys.executable, str(ROOT / "bench" / "leaderboard.py"), "--data-dir", str(ml100k_dir)]
    cmd += ["--out-dir", str(tmp_path), "--models", "itempop", "ease", "--no-search", "--timing-repeats", "1"]
    subprocess.run(cmd, check=True, cwd=ROOT, timeout=300)
    report = json.loads((tmp_path / "leaderboard.json").read_text())
    rows = {r["name"]: r for r in report["models"]}
    assert set(rows) == {"itempop", "ease"}
    for which in ("validation", "test", "test_refit_on_train_and_validation"):
        assert rows["ease"][which]["sampled"]["hr@10"] > rows["itempop"][which]["sampled"]["hr@10"] + 0.1
    assert rows["ease"]["published_sampled_test"] is None  # published figures are for ML-1M only
    assert rows["ease"]["recency"] == {"recent_fraction": 0.1, "recent_weight": 4.0}  # the chosen defaults
    assert rows["itempop"]["recency"] is None  # no such option
    markdown = (tmp_path / "leaderboard.md").read_text()
    assert "| EASE^R | newest 10% x4 |" in markdown and "| ItemPop | – |" in markdown
    assert (tmp_path / "leaderboard.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # --update re-runs only the named model and keeps the other rows; --render-only needs no data.
    (tmp_path / "leaderboard.md").unlink()
    update = [*cmd[:2], "--data-dir", str(ml100k_dir), "--out-dir", str(tmp_path), "--models", "itempop"]
    subprocess.run([*update, "--no-search", "--no-refit", "--update"], check=True, cwd=ROOT, timeout=300)
    updated = {r["name"]: r for r in json.loads((tmp_path / "leaderboard.json").read_text())["models"]}
    assert updated["ease"] == rows["ease"]
    assert updated["itempop"]["test_refit_on_train_and_validation"] == {}
    (tmp_path / "leaderboard.md").unlink()
    subprocess.run([*cmd[:2], "--out-dir", str(tmp_path), "--render-only"], check=True, cwd=ROOT, timeout=120)
    assert "EASE^R" in (tmp_path / "leaderboard.md").read_text()
