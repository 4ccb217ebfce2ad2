"""Training and evaluation speed of the Keras engine on ML-1M; writes bench/results/train_speed.{json,md}.

    .venv/bin/python bench/train_speed.py --data-dir /work/shared/data/ml-1m

Training: NeuMF 8 factors [64,32,16,8], Adam (no weight decay), one ML-1M epoch's real examples (4
negatives per positive, shuffled), `train_epoch` timed after a warm-up call that compiles the same
shapes; samples/s per batch size (median and best of `--repeats`). Evaluation: sampled (6,040 x 100
candidates) and full ranking of the test items. Timings depend on other jobs (load averages recorded).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from model.data import DataLoader, NegativeSampler, leave_one_out
from model.evaluation import Evaluator
from model.ncf.config import NCFConfig, TrainConfig
from model.ncf.keras_engine import KerasNCF
from model.ncf.params import init_params

RESULTS = Path(__file__).parent / "results"
# Learning rate used with each batch size in the accuracy part (larger batches, larger steps).
LEARNING_RATES = {256: 0.001, 2048: 0.002, 8192: 0.005}


def time_training(split, batch_size: int, n_samples: int, repeats: int) -> dict:
    users, items, labels = NegativeSampler(split.train, num_negatives=4, seed=0).epoch(1)
    order = np.random.default_rng(0).permutation(users.shape[0])[: n_samples // batch_size * batch_size]
    users, items, labels = users[order], items[order], labels[order]
    config = NCFConfig(kind="neumf", factors=8, layers=(64, 32, 16, 8))
    plain = TrainConfig(batch_size=batch_size, optimizer="adam", weight_decay=0.0, lr_schedule="constant")
    model = KerasNCF(config, plain)
    model.build(split.n_users, split.n_items, init_params(config, split.n_users, split.n_items, 0))
    model.train_epoch(users, items, labels, batch_size)  # compiles the shapes
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.train_epoch(users, items, labels, batch_size)
        seconds.append(time.perf_counter() - start)
    return {
        "batch_size": batch_size,
        "samples": int(users.shape[0]),
        "seconds": [round(s, 3) for s in seconds],
        "samples_per_s_median": round(users.shape[0] / float(np.median(seconds))),
        "samples_per_s_best": round(users.shape[0] / min(seconds)),
    }, model


def time_evaluation(split, model: KerasNCF, repeats: int) -> dict:
    out = {}
    for protocol in ("sampled", "full"):
        evaluator = Evaluator(split, protocols=(protocol,))
        evaluator.evaluate(model, "test")  # compiles
        seconds = [evaluator.evaluate(model, "test")[protocol]["seconds"] for _ in range(repeats)]
        out[protocol] = {"seconds": seconds, "median_s": round(float(np.median(seconds)), 4)}
    return out


def accuracy_per_batch_size(data_dir: str, batch_sizes: list[int], epochs: int) -> list[dict]:
    """NeuMF 8 factors trained `epochs` epochs per batch size (learning rate scaled with the batch),
    best epoch on validation; sampled test HR@10 / NDCG@10 (no refit)."""
    split = leave_one_out(DataLoader(data_dir).load(), seed=0)
    evaluator = Evaluator(split, protocols=("sampled",))
    rows = []
    for batch_size in batch_sizes:
        lr = LEARNING_RATES.get(batch_size, 0.002)
        train_config = TrainConfig(
            batch_size=batch_size,
            learning_rate=lr,
            epochs=epochs,
            patience=0,
            pretrain=False,
            num_negatives=4,
            weight_decay=0.0,  # the plain model these figures have always described
            lr_schedule="constant",
            recent_weight=1,
        )
        model = KerasNCF(NCFConfig(factors=8, layers=(64, 32, 16, 8)), train_config)
        model.fit(split.train, split.validation)
        test = evaluator.evaluate(model, "test")["sampled"]
        rows.append(
            {
                "batch_size": batch_size,
                "learning_rate": lr,
                "best_epoch": model.best_epoch_,
                "val_hr@10": max(row["val_hr@10"] for row in model.history_),
                "test_hr@10": round(test["hr@10"], 4),
                "test_ndcg@10": round(test["ndcg@10"], 4),
                "train_seconds": round(sum(row["train_seconds"] for row in model.history_), 1),
            }
        )
    return rows


def write_markdown(result: dict, path: Path) -> None:
    lines = [
        "# Keras engine speed (ML-1M)",
        "",
        f"Command: `{result['command']}`  ",
        f"Host: {result['host']['cpus']} CPUs, load average at start {result['host']['load_start']}, "
        f"at end {result['host']['load_end']} (other jobs on the 2 cores slow it down): quote medians.",
        "",
        "NeuMF 8 factors [64,32,16,8], Adam, no weight decay, XLA-compiled epoch loop, real ML-1M examples "
        "(4 negatives).",
        "",
        "| batch size | samples timed | samples/s (median) | samples/s (best) | seconds per run |",
        "|---:|---:|---:|---:|---|",
    ]
    for row in result["training"]:
        lines.append(
            f"| {row['batch_size']} | {row['samples']:,} | {row['samples_per_s_median']:,} | "
            f"{row['samples_per_s_best']:,} | {', '.join(map(str, row['seconds']))} |"
        )
    ev = result["evaluation"]
    lines += [
        "",
        "| evaluation (test items, 6,040 users) | median seconds | runs |",
        "|---|---:|---|",
        f"| sampled: 1 + 99 candidates each | {ev['sampled']['median_s']} | {ev['sampled']['seconds']} |",
        f"| full ranking: all {result['n_items']} items | {ev['full']['median_s']} | "
        f"{ev['full']['seconds']} |",
        "",
    ]
    if result.get("accuracy"):
        lines += [
            f"Accuracy reached per batch size: {result['accuracy_data']}, NeuMF 8 factors, "
            f"{result['accuracy_epochs']} epochs, best epoch on validation, sampled test item (no refit):",
            "",
            "| batch size | lr | best epoch | val HR@10 | test HR@10 | test NDCG@10 | train seconds |",
            "|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for row in result["accuracy"]:
            lines.append(
                f"| {row['batch_size']} | {row['learning_rate']} | {row['best_epoch']} | "
                f"{row['val_hr@10']:.4f} | {row['test_hr@10']:.4f} | {row['test_ndcg@10']:.4f} | "
                f"{row['train_seconds']} |"
            )
        lines.append("")
    path.write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", default=os.environ.get("NCF_DATA_DIR", "/work/shared/data/ml-1m"))
    parser.add_argument("--batch-sizes", default="256,2048,8192")
    parser.add_argument("--samples", type=int, default=1_000_000, help="examples timed per run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--accuracy-data-dir",
        default=os.environ.get("NCF_DATA_DIR_100K"),
        help="data set of the accuracy-per-batch-size part (default: $NCF_DATA_DIR_100K; unset = skipped)",
    )
    parser.add_argument("--accuracy-epochs", type=int, default=10)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    load_start = os.getloadavg()[0]
    split = leave_one_out(DataLoader(args.data_dir).load(), seed=0)
    training, model = [], None
    for batch_size in (int(b) for b in args.batch_sizes.split(",")):
        row, model = time_training(split, batch_size, args.samples, args.repeats)
        logging.info("batch %d: %s samples/s (median)", batch_size, f"{row['samples_per_s_median']:,}")
        training.append(row)
    result = {
        "command": "python bench/train_speed.py "
        + f"--batch-sizes {args.batch_sizes} --samples {args.samples} --repeats {args.repeats} "
        + f"--accuracy-epochs {args.accuracy_epochs}",
        "host": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_start": round(load_start, 2),
        },
        "n_items": split.n_items,
        "training": training,
        "evaluation": time_evaluation(split, model, args.repeats),
    }
    if args.accuracy_data_dir:
        sizes = [row["batch_size"] for row in training]
        result["accuracy_data"] = Path(args.accuracy_data_dir).name
        result["accuracy_epochs"] = args.accuracy_epochs
        result["accuracy"] = accuracy_per_batch_size(args.accuracy_data_dir, sizes, args.accuracy_epochs)
    result["host"]["load_end"] = round(os.getloadavg()[0], 2)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "train_speed.json").write_text(json.dumps(result, indent=2))
    write_markdown(result, RESULTS / "train_speed.md")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
