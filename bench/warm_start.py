"""Benchmark: does a nightly fit started from yesterday's model (`model.ncf.warm_start`) match a cold start,
in fewer epochs? On ML-1M's validation items only (selection-only: no test item is touched).

"Yesterday" is today's training data without each user's newest training rating and without a random 2% of
the users (new today); its users get their own dense index, matched back through the raw ids as the job's
saved id maps would be. Yesterday's model is trained with the large-catalogue profile's settings
(deploy/profiles/large-catalogue.toml: NeuMF, lazy updates, no pretraining, 4 negatives, 2 epochs); today
the same settings train cold (2 epochs, two seeds, for the seed-to-seed spread) and warm from yesterday's
model (1 and 2 epochs). Each fit's validation HR@10 / NDCG@10 (sampled protocol) and seconds.

    .venv/bin/python bench/warm_start.py --data-dir /work/shared/data/ml-1m

Writes bench/results/warm_start.{json,md}. The machine may be shared: the load average is recorded.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import time
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from model.data import DataLoader, Interactions, leave_one_out
from model.evaluation import Evaluator
from model.ncf.warm_start import warm_params
from model.registry import build_model

RESULTS = Path(__file__).parent / "results"
PROFILE = Path(__file__).resolve().parents[1] / "deploy" / "profiles" / "large-catalogue.toml"


def yesterday_of(train: Interactions, new_user_share: float, seed: int) -> tuple[Interactions, np.ndarray]:
    """Today's training rows without each user's newest one and without a random `new_user_share` of the
    users; returns (yesterday's interactions over its own compact user index, its users' today indices)."""
    rng = np.random.default_rng(seed)
    users = train.user_idx
    newest = np.r_[users[1:] != users[:-1], True]  # rows are per user, oldest first
    new_today = rng.random(train.n_users) < new_user_share
    keep = ~newest & ~new_today[users]
    old_users = np.unique(users[keep])
    remapped = np.searchsorted(old_users, users[keep]).astype(np.int32)
    yesterday = Interactions(remapped, train.item_idx[keep], len(old_users), train.n_items)
    return yesterday, old_users


def fit(name: str, train: Interactions, evaluator: Evaluator | None, train_config: dict, start=None) -> dict:
    """One fit (per-epoch validation when `evaluator` is given, as the job does) and its figures."""
    model = build_model("neumf", engine="keras", train_config=train_config)
    model.init_params = start
    started = time.perf_counter()
    model.fit(train, evaluator.split.validation if evaluator else None)
    seconds = time.perf_counter() - started
    figures = {"hr@10": float("nan"), "ndcg@10": float("nan")}
    if evaluator:
        figures = evaluator.evaluate(model, "validation", protocols=("sampled",))["sampled"]
    row = {
        "fit": name,
        "epochs": train_config["epochs"],
        "seed": train_config.get("seed", 0),
        "val_hr@10": round(figures["hr@10"], 4),
        "val_ndcg@10": round(figures["ndcg@10"], 4),
        "fit_s": round(seconds, 1),
    }
    logging.getLogger("bench.warm_start").info("%s", row)
    return {**row, "model": model}


def _cell(x: float) -> str:
    return "–" if x != x else f"{x:.4f}"  # NaN: not evaluated


def markdown(result: dict) -> str:
    lines = [
        "# Warm start from yesterday's model vs a cold start",
        "",
        f"`{result['command']}` on {result['date']} ({result['machine']}; load average before "
        f"{result['load_before']}, after {result['load_after']}). ML-1M, validation items only (sampled "
        "protocol, 1 + 99 candidates). Settings of every fit: the large-catalogue profile "
        f"(`{json.dumps(result['train_config'])}`).",
        "",
        f"Yesterday: {result['yesterday']['users']:,} users, {result['yesterday']['ratings']:,} ratings "
        f"(today: {result['today']['users']:,} users, {result['today']['ratings']:,} ratings; each user's "
        f"newest training rating and {result['new_user_share']:.0%} of the users are new today). "
        f"{result['carried_users']:,} users carried over by raw id.",
        "",
        "| fit | epochs | seed | validation HR@10 | validation NDCG@10 | fit s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['fit']} | {r['epochs']} | {r['seed']} | {_cell(r['val_hr@10'])} | "
            f"{_cell(r['val_ndcg@10'])} | {r['fit_s']} |"
        )
    lines += [
        "",
        result["verdict"],
        "",
        "One night is measured (yesterday -> today, about 3% new ratings and 2% new users), not a chain of "
        "warm-started nights. The warm model has also seen yesterday's data for its epochs. Fit seconds are "
        "on a machine shared with other benchmarks: compare epochs, not seconds.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", default=os.environ.get("NCF_DATA_DIR"))
    parser.add_argument("--new-user-share", type=float, default=0.02)
    parser.add_argument("--render", action="store_true", help="only rewrite warm_start.md from its JSON")
    args = parser.parse_args()
    if args.render:
        (RESULTS / "warm_start.md").write_text(
            markdown(json.loads((RESULTS / "warm_start.json").read_text()))
        )
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    load_before = [round(x, 2) for x in os.getloadavg()]
    profile = tomllib.loads(PROFILE.read_text())["train"]
    dataset = DataLoader(args.data_dir).load()
    split = leave_one_out(dataset, seed=0, n_negatives=99)
    evaluator = Evaluator(split)
    train = split.train
    yesterday, old_users = yesterday_of(train, args.new_user_share, seed=0)
    rows = []
    base = {**profile, "seed": 0}
    old = fit("yesterday's model (on yesterday's data)", yesterday, None, base)
    rows.append({k: v for k, v in old.items() if k != "model"})
    for seed in (0, 1):
        cold = fit("cold start", train, evaluator, {**profile, "seed": seed})
        rows.append({k: v for k, v in cold.items() if k != "model"})
    ids_old = (old_users, np.arange(train.n_items))
    ids_new = (np.arange(train.n_users), np.arange(train.n_items))
    for epochs in (1, 2):
        start = warm_params(old["model"].get_params(), old["model"].config, ids_old, ids_new, seed=0)
        warm = fit("warm start", train, evaluator, {**profile, "epochs": epochs, "seed": 0}, start)
        rows.append({k: v for k, v in warm.items() if k != "model"})
    cold_rows = [r for r in rows if r["fit"] == "cold start"]
    warm_rows = {r["epochs"]: r for r in rows if r["fit"] == "warm start"}
    spread = abs(cold_rows[0]["val_hr@10"] - cold_rows[1]["val_hr@10"])
    cold_mean = float(np.mean([r["val_hr@10"] for r in cold_rows]))
    verdict = (
        f"Cold start, 2 epochs: validation HR@10 {cold_mean:.4f} (mean of 2 seeds, spread {spread:.4f}). "
        + ", ".join(
            f"warm start, {e} epoch{'s' if e > 1 else ''}: {warm_rows[e]['val_hr@10']:.4f} "
            f"({warm_rows[e]['val_hr@10'] - cold_mean:+.4f})"
            for e in (1, 2)
        )
        + "."
    )
    result = {
        "command": "python bench/warm_start.py --data-dir " + str(args.data_dir),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "load_before": load_before,
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "train_config": profile,
        "new_user_share": args.new_user_share,
        "yesterday": {"users": len(old_users), "ratings": len(yesterday)},
        "today": {"users": train.n_users, "ratings": len(train)},
        "carried_users": len(old_users),
        "rows": rows,
        "verdict": verdict,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "warm_start.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "warm_start.md").write_text(markdown(result))
    print(verdict)


if __name__ == "__main__":
    main()
