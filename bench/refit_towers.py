"""Benchmark: does the refit need to retrain NeuMF's pretrained towers? Measured on a pseudo-test.

The CLI's `--refit` (and the nightly job) retrains the GMF and MLP towers on the refit data, then fuses and
fine-tunes them: about half of the training time. This script compares, from one selection fit of the
default NeuMF, refits that retrain both towers (what the CLI does), keep the selection run's MLP tower,
keep both towers (only the fused model is refit), train the selection model on for one more epoch on the
refit data (a warm start, fresh optimizer state), and no refit at all.

The real test item is never read: everything runs on `inner_leave_one_out`, the split of the data without
each user's newest interaction. Its "test" item is the usual validation item (second-newest) and its
validation item the third-newest, so the comparison mirrors the CLI's select-then-refit pipeline one step
back in time.

    .venv/bin/python bench/refit_towers.py --data-dir /work/shared/data/ml-1m [--train-seed 0]

Writes bench/results/refit_towers.json and .md (or `--name`.json/.md). Timings are wall seconds on a
shared 2-core machine (the load average is recorded).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
CONTINUE = "continue"
VARIANTS = {  # name -> towers kept from the selection run (None = no refit, CONTINUE = warm start)
    "refit, towers retrained (CLI default)": (),
    "refit, MLP tower kept": ("mlp",),
    "refit, both towers kept (fused model only)": ("gmf", "mlp"),
    "selection model trained on for 1 more epoch on the refit data": CONTINUE,
    "no refit (selection model)": None,
}
logger = logging.getLogger("refit_towers")


def run(data_dir: str, split_seed: int, train_seed: int, engine: str) -> dict:
    from model.data import DataLoader, inner_leave_one_out
    from model.evaluation import Evaluator
    from model.registry import build_model

    split = inner_leave_one_out(DataLoader(data_dir).load(), seed=split_seed)
    evaluator = Evaluator(split, k=10, protocols=("sampled",))
    load = os.getloadavg()[0]
    start = time.perf_counter()
    model = build_model("neumf", engine=engine, train_config={"seed": train_seed})
    model.fit(split.train, split.validation)
    fit_s = time.perf_counter() - start
    selection = evaluator.evaluate(model, "validation")["sampled"]
    rows = []
    for name, kept in VARIANTS.items():
        start = time.perf_counter()
        if kept is None:
            scored = model
        elif kept == CONTINUE:
            one_more = model.train_config.model_copy(update={"epochs": 1, "patience": 0, "pretrain": False})
            scored = type(model)(model.config, one_more, init_params=model.get_params())
            scored.fit(split.train_with_validation())
        else:
            scored = model.refit(split.train_with_validation(), keep_towers=kept)
        refit_s = time.perf_counter() - start
        metrics = evaluator.evaluate(scored, "test")["sampled"]
        rows.append(
            {
                "variant": name,
                "kept_towers": kept,
                "pseudo_test_hr@10": metrics["hr@10"],
                "pseudo_test_ndcg@10": metrics["ndcg@10"],
                "refit_s": round(refit_s, 1),
            }
        )
        hr, ndcg = metrics["hr@10"], metrics["ndcg@10"]
        logger.info("%s: HR@10 %.4f NDCG@10 %.4f (%.0f s)", name, hr, ndcg, refit_s)
    return {
        "command": "python bench/refit_towers.py " + " ".join(sys.argv[1:]),
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "engine": engine,
        "train_config": model.train_config.model_dump(mode="json"),
        "best_epoch": model.best_epoch_,
        "selection_fit_s": round(fit_s, 1),
        "inner_validation": {"hr@10": selection["hr@10"], "ndcg@10": selection["ndcg@10"]},
        "load_average_before": round(load, 2),
        "load_average_after": round(os.getloadavg()[0], 2),
        "variants": rows,
    }


def markdown(result: dict) -> str:
    lines = [
        "# Refit with or without retraining NeuMF's towers (pseudo-test, real test item never read)",
        "",
        f"Command: `{result['command']}` ({result['date_utc']} UTC, engine {result['engine']}, load average "
        f"{result['load_average_before']} -> {result['load_average_after']}; shared 2-core machine).",
        "",
        "Split: the data without each user's newest interaction; its test item is the usual validation item "
        "(second-newest), its validation item the third-newest. One selection fit of the defaults "
        f"({result['selection_fit_s']} s, best epoch {result['best_epoch']}, inner validation HR@10 "
        f"{result['inner_validation']['hr@10']:.4f}), then each refit on train + inner validation items.",
        "",
        "| variant | pseudo-test HR@10 | pseudo-test NDCG@10 | refit s |",
        "|---|---:|---:|---:|",
    ]
    for row in result["variants"]:
        lines.append(
            f"| {row['variant']} | {row['pseudo_test_hr@10']:.4f} | {row['pseudo_test_ndcg@10']:.4f} "
            f"| {row['refit_s']} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("NCF_DATA_DIR"), required=False)
    parser.add_argument("--seed", type=int, default=0, help="split and candidate seed")
    parser.add_argument("--train-seed", type=int, default=0)
    parser.add_argument("--engine", choices=("keras", "numpy"), default="keras")
    parser.add_argument("--name", default="refit_towers", help="result file stem under bench/results")
    args = parser.parse_args()
    if not args.data_dir:
        parser.error("--data-dir (or NCF_DATA_DIR) is required")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    result = run(args.data_dir, args.seed, args.train_seed, args.engine)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / f"{args.name}.md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
