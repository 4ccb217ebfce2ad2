"""Smoke run of bench/leaderboard.py on ML-100K (defaults only, three quick models, two training seeds
for the stochastic one): it writes the JSON, Markdown, PNG and per-user files with measured figures (needs
NCF_DATA_DIR_100K; skipped when unset); its paired tests and goal verdicts on synthetic per-user files."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from model.registry import build_model

ROOT = Path(__file__).resolve().parents[1]


def run_script(cmd: list[str], timeout: int = 300) -> None:
    """Runs the script with this tree's packages first on the path (the script's own folder is bench/)."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    subprocess.run(cmd, check=True, cwd=ROOT, timeout=timeout, env=env)


def leaderboard_module():
    spec = importlib.util.spec_from_file_location("leaderboard", ROOT / "bench" / "leaderboard.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_leaderboard_writes_its_three_files(tmp_path, ml100k_dir):
    cmd = [sys.executable, str(ROOT / "bench" / "leaderboard.py"), "--data-dir", str(ml100k_dir)]
    cmd += ["--out-dir", str(tmp_path), "--models", "itempop", "ease", "ials", "--no-search"]
    cmd += ["--timing-repeats", "1", "--seeds", "0", "1", "--num-threads", "1"]
    run_script(cmd)
    report = json.loads((tmp_path / "leaderboard.json").read_text())
    rows = {r["name"]: r for r in report["models"]}
    assert set(rows) == {"itempop", "ease", "ials"}
    assert rows["ials"]["seeds"] == [0, 1] and rows["ials"]["stochastic"]
    assert rows["ease"]["seeds"] == [None] and not rows["ease"]["stochastic"]
    assert rows["ease"]["spread_over_seeds"] is None and rows["ials"]["spread_over_seeds"]["test"]["full"]
    # Per-user files: one per run; their means are the run's figures, the row's figure their mean.
    runs = rows["ials"]["runs"]
    assert [r["per_user_file"] for r in runs] == [f"leaderboard_per_user/ials_seed{s}.npz" for s in (0, 1)]
    files = [np.load(tmp_path / r["per_user_file"]) for r in runs]
    for run, arrays in zip(runs, files, strict=True):
        for which, key in (("validation", "validation"), ("test", "test"), ("test_refit", REFIT)):
            assert set(run[key]["full"]) == {"hr@10", "ndcg@10", "recall@20", "mrr", "seconds"}
            for protocol, metrics in run[key].items():
                for metric, figure in metrics.items():
                    if metric != "seconds":
                        values = arrays[f"{which}.{protocol}.{metric}"]
                        assert values.shape == (943,) and values.dtype == np.float64
                        assert values.mean() == pytest.approx(figure, abs=1e-12)
    assert rows["ials"]["test"]["full"]["mrr"] == pytest.approx(
        np.mean([r["test"]["full"]["mrr"] for r in runs])
    )
    assert (tmp_path / "leaderboard_per_user" / "ease.npz").exists()
    # Paired tests against the best row of every column group, over the same 943 users.
    groups = report["paired"]["groups"]
    assert set(groups) == {f"{w}.{p}" for w in ("test", REFIT) for p in ("sampled", "full")}
    sampled_hr = groups["test.sampled"]["hr@10"]
    assert sampled_hr["best"] == max(rows, key=lambda n: rows[n]["test"]["sampled"]["hr@10"])
    assert rows["itempop"]["test"]["sampled"]["hr@10"] < rows["ease"]["test"]["sampled"]["hr@10"]
    itempop = sampled_hr["vs_best"]["itempop"]
    assert itempop["n"] == 943 and itempop["mean_difference"] < 0 and itempop["t_pvalue"] < 1e-6
    assert report["paired"]["goal"] == []  # no NeuMF row
    for which in ("validation", "test", "test_refit_on_train_and_validation"):
        assert rows["ease"][which]["sampled"]["hr@10"] > rows["itempop"][which]["sampled"]["hr@10"] + 0.1
    assert rows["ease"]["published_sampled_test"] is None  # published figures are for ML-1M only
    assert rows["ease"]["recency"] == {"recent_fraction": 0.1, "recent_weight": 4.0}  # the chosen defaults
    assert rows["itempop"]["recency"] is None  # no such option
    markdown = (tmp_path / "leaderboard.md").read_text()
    assert "| EASE^R | newest 10% x4 | 1 (deterministic) |" in markdown and "| ItemPop | – |" in markdown
    assert "| iALS | newest 10% x8 | 2 (seeds 0, 1) |" in markdown and " ± " in markdown
    assert "## Paired tests against the best row" in markdown and "**best**" in markdown
    assert (tmp_path / "leaderboard.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # --update re-runs only the named model and keeps the other rows; --render-only needs no data.
    (tmp_path / "leaderboard.md").unlink()
    update = [*cmd[:2], "--data-dir", str(ml100k_dir), "--out-dir", str(tmp_path), "--models", "itempop"]
    run_script([*update, "--no-search", "--no-refit", "--update"])
    updated = {r["name"]: r for r in json.loads((tmp_path / "leaderboard.json").read_text())["models"]}
    assert updated["ease"] == rows["ease"]
    assert [r["name"] for r in json.loads((tmp_path / "leaderboard.json").read_text())["models"]] == [
        "itempop",
        "ials",
        "ease",
    ]  # the leaderboard's order, whatever order the runs had
    assert updated["itempop"]["test_refit_on_train_and_validation"] == {}
    (tmp_path / "leaderboard.md").unlink()
    run_script([*cmd[:2], "--out-dir", str(tmp_path), "--render-only"], timeout=120)
    assert "EASE^R" in (tmp_path / "leaderboard.md").read_text()

    # --merge-from folds a model run elsewhere (same split) into the leaderboard, per-user files included.
    other = [
        *cmd[:4],
        "--out-dir",
        str(tmp_path / "other"),
        "--models",
        "itemknn",
        "--no-search",
        "--no-refit",
    ]
    run_script([*other, "--timing-repeats", "1"])
    merge = [*cmd[:2], "--out-dir", str(tmp_path), "--merge-from", str(tmp_path / "other")]
    run_script(merge, timeout=120)
    merged = json.loads((tmp_path / "leaderboard.json").read_text())
    assert [r["name"] for r in merged["models"]] == ["itempop", "itemknn", "ials", "ease"]
    assert (tmp_path / "leaderboard_per_user" / "itemknn.npz").exists()
    compared = merged["paired"]["groups"]["test.sampled"]["hr@10"]
    assert "itemknn" in {compared["best"], *compared["vs_best"]}
    assert "merged: rows itemknn from" in merged["meta"]["command"]


def test_chosen_from_skips_the_search(tmp_path, ml100k_dir):
    """--chosen-from fits the configuration another leaderboard chose, carrying its search record."""
    chosen = {
        "models": [
            {
                "name": "itemknn",
                "chosen_params": {"k": 20, "shrink": 10.0},
                "search": [{"params": {"k": 20, "shrink": 10.0}, "fit_seconds": 1.0, "validation": {}}],
            }
        ]
    }
    (tmp_path / "chosen.json").write_text(json.dumps(chosen))
    cmd = [sys.executable, str(ROOT / "bench" / "leaderboard.py"), "--data-dir", str(ml100k_dir)]
    cmd += ["--out-dir", str(tmp_path / "out"), "--models", "itemknn", "--no-refit", "--timing-repeats", "1"]
    run_script([*cmd, "--chosen-from", str(tmp_path / "chosen.json")])
    row = json.loads((tmp_path / "out" / "leaderboard.json").read_text())["models"][0]
    assert (
        row["chosen_params"] == {"k": 20, "shrink": 10.0} and row["search"] == chosen["models"][0]["search"]
    )
    assert row["fit_seconds"]["runs"] == [row["runs"][0]["fit_seconds"]]  # one fit: no grid
    assert row["chosen_from"] == str(tmp_path / "chosen.json")


REFIT = "test_refit_on_train_and_validation"


def _fake_row(name: str, seeds: list, tmp_path: Path, arrays: dict[str, np.ndarray]) -> dict:
    """A leaderboard row whose per-user files hold `arrays` (keyed "test.PROTOCOL.METRIC") for every seed."""
    runs = []
    for seed in seeds:
        relative = f"leaderboard_per_user/{name}_{seed}.npz"
        (tmp_path / relative).parent.mkdir(exist_ok=True)
        users = np.arange(next(iter(arrays.values())).size, dtype=np.int32)
        np.savez_compressed(
            tmp_path / relative, **{"validation.user_idx": users, "test.user_idx": users}, **arrays
        )
        runs.append({"seed": seed, "per_user_file": relative})
    test: dict[str, dict] = {}
    for key, values in arrays.items():
        _, protocol, metric = key.split(".")
        test.setdefault(protocol, {})[metric] = float(values.mean())
    return {"name": name, "display": name.upper(), "runs": runs, "test": test}


def test_paired_tests_and_the_goal_verdicts(tmp_path):
    """NeuMF clearly below iALS on sampled HR@10, level with it on NDCG@10 (noise), above EASE^R on full
    ranking: the goal verdicts, the best rows and the differences say so."""
    board = leaderboard_module()
    rng = np.random.default_rng(0)
    n = 3000
    ials_hr = (rng.random(n) < 0.7).astype(float)
    neumf_hr = np.where(rng.random(n) < 0.2, 0.0, ials_hr)  # a fifth of iALS' hits lost: real
    ials_ndcg = rng.random(n) * 0.5
    neumf_ndcg = ials_ndcg + rng.normal(0.0, 0.05, n)  # noise around iALS
    ease_full = (rng.random(n) < 0.1).astype(float)
    neumf_full = np.maximum(ease_full, (rng.random(n) < 0.05).astype(float))  # never worse, often better
    rows = [
        _fake_row(
            "ials", [0, 1], tmp_path, {"test.sampled.hr@10": ials_hr, "test.sampled.ndcg@10": ials_ndcg}
        ),
        _fake_row(
            "ease", [None], tmp_path, {"test.full.hr@10": ease_full, "test.full.ndcg@10": ease_full / 2}
        ),
        _fake_row(
            "neumf",
            [0, 1, 2],
            tmp_path,
            {
                "test.sampled.hr@10": neumf_hr,
                "test.sampled.ndcg@10": neumf_ndcg,
                "test.full.hr@10": neumf_full,
                "test.full.ndcg@10": neumf_full / 2,
            },
        ),
    ]
    paired = board.paired_tests({"models": rows}, tmp_path)
    sampled = paired["groups"]["test.sampled"]
    assert sampled["hr@10"]["best"] == "ials"
    lost = sampled["hr@10"]["vs_best"]["neumf"]
    assert lost["mean_difference"] == pytest.approx(neumf_hr.mean() - ials_hr.mean())
    assert lost["ci_high"] < 0 and lost["t_pvalue"] < 1e-6
    goal = {(g["against"], g["metric"]): g for g in paired["goal"]}
    assert set(goal) == {("ials", "hr@10"), ("ials", "ndcg@10"), ("ease", "hr@10"), ("ease", "ndcg@10")}
    assert not goal["ials", "hr@10"]["at_or_above"] and goal["ials", "hr@10"]["difference"] == "real"
    assert goal["ials", "ndcg@10"]["difference"] == "noise"
    assert goal["ease", "hr@10"]["at_or_above"] and goal["ease", "hr@10"]["difference"] == "real"
    report = {"meta": {}, "models": rows, "paired": paired}
    lines = "\n".join(board.goal_markdown(report))
    assert "**goal not reached**" in lines and "IALS sampled HR@10" in lines


def test_the_goal_covers_the_blend_row_and_names_it(tmp_path):
    """With a NeuMF blend row, the goal's four comparisons are made for it as well, its verdict line names
    it, and the row's name is the model's own (members and weight)."""
    board = leaderboard_module()
    rng = np.random.default_rng(1)
    n = 500
    hits = (rng.random(n) < 0.5).astype(float)
    arrays = {
        f"test.{protocol}.{metric}": hits
        for protocol in ("sampled", "full")
        for metric in ("hr@10", "ndcg@10")
    }
    rows = [_fake_row(name, [0], tmp_path, arrays) for name in ("ials", "ease", "neumf", "neumf_blend")]
    paired = board.paired_tests({"models": rows}, tmp_path)
    blend = [
        (g["against"], g["protocol"], g["metric"]) for g in paired["goal"] if g["model"] == "neumf_blend"
    ]
    assert sorted(blend) == sorted(
        (other, protocol, metric)
        for other, protocol in (("ials", "sampled"), ("ease", "full"))
        for metric in ("hr@10", "ndcg@10")
    )
    lines = "\n".join(board.goal_markdown({"meta": {}, "models": rows, "paired": paired}))
    assert "- NEUMF_BLEND, trained on train: **goal reached**" in lines
    model = build_model("neumf_blend", partner="ease", weight=0.3, neumf_scores="probability")
    assert board.display_of("neumf_blend", model) == "NeuMF + EASE^R blend (w=0.3)"
    model = build_model("neumf_blend", partner="ease", weight=0.6, neumf_scores="logit")
    assert board.display_of("neumf_blend", model) == "NeuMF + EASE^R blend (logits, w=0.6)"
    assert board.display_of("ials", build_model("ials")) == "iALS"
