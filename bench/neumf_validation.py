"""NeuMF variants on the VALIDATION item only, paired per user against the leaderboard's rows.

Fits NeuMF with the default configuration plus the given TrainConfig overrides, on the training part of
the leaderboard's split (seed 0), for each training seed; scores the validation item under both protocols
(per user, `Evaluator.evaluate_per_user`) and compares the per-user figures (mean over the seeds) with those
of the default NeuMF, iALS and EASE^R saved by the leaderboard (bench/results/leaderboard_per_user/, the
same validation users and candidates; the stochastic ones of the same training seeds), with the paired
tests of `model.paired`. No test item is scored and
there is no refit: this is a screen for choices to be made on validation.

    python bench/neumf_validation.py --name pop0.75 --set negative_popularity=0.75 [--seeds 0]

Adds (or replaces) the named variant in bench/results/neumf_validation.json and rewrites
neumf_validation.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from model.data import DataLoader, LeaveOneOutSplit, leave_one_out
from model.evaluation import Evaluator
from model.paired import paired_test
from model.registry import build_model

logger = logging.getLogger("bench.neumf_validation")
RESULTS = Path(__file__).resolve().parent / "results"
BOARD = RESULTS / "leaderboard.json"
AGAINST = ("neumf", "ials", "ease")
METRICS = {"sampled": ("hr@10", "ndcg@10"), "full": ("hr@10", "ndcg@10", "recall@20", "mrr")}
TITLES = {"hr@10": "HR@10", "ndcg@10": "NDCG@10", "recall@20": "Recall@20", "mrr": "MRR"}


def parse_overrides(pairs: list[str]) -> dict:
    """KEY=VALUE pairs as TrainConfig overrides, values read as JSON (numbers, true/false) or text."""
    overrides = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep:
            raise SystemExit(f"--set takes KEY=VALUE, got {pair!r}")
        try:
            overrides[key] = json.loads(raw)
        except json.JSONDecodeError:
            overrides[key] = raw
    return overrides


def leaderboard_validation(row: dict, seeds: list[int]) -> dict[str, np.ndarray]:
    """A leaderboard row's validation per-user figures, mean over its runs of `seeds` (all its runs for a
    deterministic model), keyed "protocol.metric"."""
    runs = [run for run in row["runs"] if run["seed"] is None or run["seed"] in seeds]
    if not runs or (row["stochastic"] and len(runs) != len(seeds)):
        raise SystemExit(f"{row['name']}: the leaderboard has no runs of training seeds {seeds}")
    loaded = [np.load(RESULTS / run["per_user_file"]) for run in runs]
    return {
        f"{protocol}.{metric}": np.mean([f[f"validation.{protocol}.{metric}"] for f in loaded], axis=0)
        for protocol, metrics in METRICS.items()
        for metric in metrics
    }


def paired_against_leaderboard(
    board: dict, users: np.ndarray, ours: dict[str, np.ndarray], seeds: list[int]
) -> dict[str, dict]:
    """`ours` (per-user validation figures of `users`, keyed "protocol.metric") against each `AGAINST`
    row of the leaderboard `board`: its display name, the training seeds of its figures, its validation
    means and the paired tests (`model.paired`). Refuses a leaderboard of other validation users."""
    compared = {}
    for name in AGAINST:
        row = next(r for r in board["models"] if r["name"] == name)
        stored = np.load(RESULTS / row["runs"][0]["per_user_file"])["validation.user_idx"]
        if not np.array_equal(stored, users):
            raise SystemExit(f"{name}: the leaderboard's validation users differ from this split's")
        theirs = leaderboard_validation(row, seeds)
        compared[name] = {
            "display": row["display"],
            "seeds": seeds if row["stochastic"] else row["seeds"],
            "validation_mean": {key: float(values.mean()) for key, values in theirs.items()},
            "tests": {key: paired_test(ours[key], theirs[key]).to_dict() for key in ours},
        }
    return compared


def flat_per_user(per_user: dict[str, dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """`Evaluator.evaluate_per_user`'s per-user figures ({protocol: {metric: (u,)}}) of the `METRICS`,
    keyed "protocol.metric"."""
    return {f"{p}.{m}": per_user[p][m] for p, metrics in METRICS.items() for m in metrics}


def leaderboard_split(data_dir: Path | None, split_seed: int) -> tuple[dict, LeaveOneOutSplit, Evaluator]:
    """The leaderboard file, the leave-one-out split of `data_dir` with `split_seed` and an evaluator of
    both protocols on it; refuses a leaderboard of another data set or split seed."""
    dataset = DataLoader(data_dir).load()
    board = json.loads(BOARD.read_text())
    if board["meta"]["seed"] != split_seed or board["meta"]["dataset"] != dataset.name:
        raise SystemExit("the leaderboard's per-user figures are of another data set or split")
    split = leave_one_out(dataset, seed=split_seed)
    return board, split, Evaluator(split, k=10, protocols=("sampled", "full"))


def run(args: argparse.Namespace) -> dict:
    board, split, evaluator = leaderboard_split(args.data_dir, args.split_seed)
    overrides = parse_overrides(args.set)
    runs, arrays = [], []
    for seed in args.seeds:
        model = build_model("neumf", train_config={**overrides, "seed": seed})
        start = time.perf_counter()
        model.fit(split.train, split.validation)
        fit_s = time.perf_counter() - start
        figures, per_user = evaluator.evaluate_per_user(model, "validation")
        logger.info("%s seed %d: fit %.0fs, validation %s", args.name, seed, fit_s, figures)
        runs.append({"seed": seed, "fit_seconds": round(fit_s, 1), "validation": figures})
        arrays.append(flat_per_user(per_user))
    ours = {key: np.mean([a[key] for a in arrays], axis=0) for key in arrays[0]}
    compared = paired_against_leaderboard(board, split.validation.user_idx, ours, args.seeds)
    return {
        "name": args.name,
        "train_config_overrides": overrides,
        "seeds": args.seeds,
        "validation_mean": {key: float(values.mean()) for key, values in ours.items()},
        "runs": runs,
        "fit_seconds_median": statistics.median(r["fit_seconds"] for r in runs),
        "against": compared,
        "command": "python bench/neumf_validation.py " + " ".join(sys.argv[1:]),
        "generated": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, shared with other jobs",
    }


def to_markdown(variants: list[dict]) -> str:
    lines = [
        "# NeuMF variants on the validation item, paired against the leaderboard",
        "",
        "Written by `bench/neumf_validation.py`. ML-1M, the leaderboard's split (seed 0); NeuMF with the "
        "default configuration plus the variant's TrainConfig overrides, fitted on the training part (epochs "
        "chosen on validation as usual), scored on the **validation item only** (no test item, no refit). "
        "Each cell: the variant's mean per-user figure minus that of the leaderboard row (per-user figures "
        "averaged over the variant's training seeds, on both sides for the stochastic models; the "
        "deterministic EASE^R has one run), its 95% confidence interval, and the p-values of the "
        "paired t-test / Wilcoxon signed-rank test over the validation users.",
        "",
    ]
    for v in variants:
        lines += [
            f"## {v['name']}: `{json.dumps(v['train_config_overrides'])}`, seeds {v['seeds']}",
            "",
            f"Command: `{v['command']}`; generated {v['generated']}; fit {v['fit_seconds_median']:.0f} s "
            f"(median; {v['machine']}).",
            "",
            "| figure (validation) | variant | "
            + " | ".join(f"Δ vs {c['display']}" for c in v["against"].values())
            + " |",
            "|---|---:|" + "---|" * len(v["against"]),
        ]
        for key, mean in v["validation_mean"].items():
            cells = []
            for c in v["against"].values():
                t = c["tests"][key]
                cells.append(
                    f"{t['mean_difference']:+.4f} [{t['ci_low']:+.4f}, {t['ci_high']:+.4f}]; "
                    f"p {t['t_pvalue']:.2g} / {t['wilcoxon_pvalue']:.2g}"
                )
            lines.append(f"| {title(key)} | {mean:.4f} | " + " | ".join(cells) + " |")
        lines += ["", summary(v), ""]
    return "\n".join(lines)


def title(key: str) -> str:
    protocol, metric = key.split(".")
    return f"{protocol} {TITLES[metric]}"


def summary(variant: dict) -> str:
    """How the variant compares with the default NeuMF: figures above / below, and which the tests call real
    (both p-values under 0.05)."""
    tests = variant["against"]["neumf"]["tests"]
    real = {k for k, t in tests.items() if t["t_pvalue"] < 0.05 and t["wilcoxon_pvalue"] < 0.05}
    below = [k for k, t in tests.items() if t["mean_difference"] < 0]
    above = [k for k in tests if k not in below]

    def names(keys: list[str]) -> str:
        return ", ".join(f"{title(k)}{' (real)' if k in real else ''}" for k in keys) or "none"

    return (
        f"Against the default NeuMF (same training seeds) on validation: below on {len(below)} of "
        f"{len(tests)} figures ({names(below)}); at or above on {names(above)}."
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", default=os.environ.get("NCF_DATA_DIR"), help="default: $NCF_DATA_DIR")
    parser.add_argument("--name", help="the variant's name in the result file")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="TrainConfig overrides")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds")
    parser.add_argument("--split-seed", type=int, default=0, help="must be the leaderboard's")
    parser.add_argument("--render-only", action="store_true", help="rewrite the .md from the .json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s")
    path = RESULTS / "neumf_validation.json"
    if args.render_only:
        (RESULTS / "neumf_validation.md").write_text(to_markdown(json.loads(path.read_text())))
        return 0
    if not args.data_dir or not args.name:
        parser.error("pass --name, and --data-dir or set NCF_DATA_DIR")
    result = run(args)
    variants = [v for v in (json.loads(path.read_text()) if path.exists() else []) if v["name"] != args.name]
    variants.append(result)
    path.write_text(json.dumps(variants, indent=2) + "\n")
    (RESULTS / "neumf_validation.md").write_text(to_markdown(variants))
    logger.info("wrote %s and neumf_validation.md", path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
