"""Keras vs NumPy NeuMF on MovieLens 1M: same config, seed and data, one subprocess per engine.

Each engine trains through `NeuMFTrainer` (validation HR@10 every epoch, best epoch restored), then is
evaluated on the validation and test items with the sampled (1 + 99) and full-ranking protocols. Written:
`bench/results/compare_engines.json`, `.md` and `.png` (validation HR@10 per epoch, both engines; another
stem with `--out`).

Speed is `model.train_epoch` time only (negative sampling and validation excluded, identical for both);
samples/s is the median over epochs after the first (the first includes Keras' XLA compilation). CPU
seconds (all threads of the process, plus the NumPy engine's step helper process) are reported too: on a
loaded machine a multi-threaded (or multi-process) engine gets a larger share of the cores than a
single-threaded one, so wall-clock speed alone is not the whole story. Peak memory is the worker
process's max RSS (`resource.getrusage`), TensorFlow's own footprint included.

With `--repeats N` the pair runs N times, in ABBA order (Keras, NumPy, NumPy, Keras, ...), so that both
engines see the same drift in what else the machine runs; the table and chart show the first pair, and a
second table gives each pair's samples/s, their ratio and the medians over the pairs (the figure to
quote on a noisy machine).

    .venv/bin/python bench/compare_engines.py --data-dir /work/shared/data/ml-1m --repeats 5
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
ENGINES = ("keras", "numpy")
logger = logging.getLogger("compare_engines")


def worker(engine: str, data_dir: str, settings: dict, out: Path) -> None:
    """Train and evaluate one engine; write its measurements to `out` (JSON)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s {engine} %(message)s")
    from model.data import DataLoader, leave_one_out
    from model.evaluation import Evaluator
    from model.registry import build_model

    split = leave_one_out(DataLoader(data_dir).load(), seed=settings["split_seed"])
    model = build_model(
        "neumf", engine=engine, config=settings["config"], train_config=settings["train_config"]
    )
    epoch_seconds: list[float] = []
    epoch_cpu_seconds: list[float] = []
    samples: list[int] = []
    train_epoch = model.train_epoch

    def cpu_seconds() -> float:
        """CPU seconds of this process (all threads) and of its finished child processes (the NumPy
        engine's step helpers, stopped at the end of each epoch)."""
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return time.process_time() + children.ru_utime + children.ru_stime

    def timed_train_epoch(users, items, labels, batch_size):
        start, cpu_start = time.perf_counter(), cpu_seconds()
        loss = train_epoch(users, items, labels, batch_size)
        epoch_seconds.append(time.perf_counter() - start)
        epoch_cpu_seconds.append(cpu_seconds() - cpu_start)
        samples.append(int(labels.shape[0]))
        return loss

    model.train_epoch = timed_train_epoch  # measure the engine only, not sampling or validation
    load_before = os.getloadavg()
    start = time.perf_counter()
    model.fit(split.train, split.validation)
    fit_seconds = time.perf_counter() - start
    evaluator = Evaluator(split, protocols=("sampled", "full"))
    metrics = {part: evaluator.evaluate(model, part) for part in ("validation", "test")}
    steady = epoch_seconds[1:] or epoch_seconds
    result = {
        "engine": engine,
        "history": model.history_,
        "best_epoch": model.best_epoch_,
        "metrics": metrics,
        "fit_seconds": round(fit_seconds, 2),
        "train_epoch_seconds": [round(s, 3) for s in epoch_seconds],
        "median_train_epoch_seconds": round(float(np.median(steady)), 3),
        "median_samples_per_second": round(float(np.median(np.array(samples[-len(steady) :]) / steady))),
        "train_epoch_cpu_seconds": [round(s, 3) for s in epoch_cpu_seconds],
        "median_train_epoch_cpu_seconds": round(
            float(np.median(epoch_cpu_seconds[1:] or epoch_cpu_seconds)), 3
        ),
        "samples_per_epoch": samples[0],
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }
    out.write_text(json.dumps(result, indent=2))


def run_engine(engine: str, args: argparse.Namespace, settings: dict) -> dict:
    out = RESULTS / f".compare_engines_{engine}.json"
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        engine,
        "--data-dir",
        args.data_dir,
        "--settings",
        json.dumps(settings),
        "--worker-out",
        str(out),
    ]
    logger.info("running %s", engine)
    subprocess.run(cmd, check=True)
    result = json.loads(out.read_text())
    out.unlink()
    return result


def write_markdown(report: dict, path: Path) -> None:
    runs = report["engines"]
    lines = [
        "# Keras vs NumPy NeuMF on MovieLens 1M",
        "",
        f"Command: `{report['command']}`  ",
        f"Date (UTC): {report['date_utc']}; machine: {report['machine']}  ",
        "Timings depend on what else the 2 cores run: the 1-minute load average before and after each engine "
        "is in the table (below ~1.5 the machine was otherwise idle).",
        "",
        f"Same config, seed and data for both engines: `{json.dumps(report['settings'])}`. "
        "Metrics are for the best epoch on validation HR@10 (restored after training).",
        "",
        "| | " + " | ".join(runs) + " |",
        "|---|" + "---|" * len(runs),
    ]

    def row(label, fn):
        lines.append(f"| {label} | " + " | ".join(fn(runs[e]) for e in runs) + " |")

    for part in ("test", "validation"):
        for protocol in ("sampled", "full"):
            for metric in ("hr@10", "ndcg@10"):
                row(
                    f"{part} {protocol} {metric.upper()}",
                    lambda r, p=part, q=protocol, m=metric: f"{r['metrics'][p][q][m]:.4f}",
                )
    row("best epoch / epochs run", lambda r: f"{r['best_epoch']} / {len(r['history'])}")
    row("train_epoch seconds (median, epochs 2+)", lambda r: f"{r['median_train_epoch_seconds']:.2f}")
    row("first train_epoch seconds", lambda r: f"{r['train_epoch_seconds'][0]:.2f}")
    row("training samples/s (median, epochs 2+)", lambda r: f"{r['median_samples_per_second']:,}")
    row(
        "train_epoch CPU seconds, all threads (median, epochs 2+)",
        lambda r: f"{r['median_train_epoch_cpu_seconds']:.2f}",
    )
    row("whole fit seconds (incl. sampling, validation)", lambda r: f"{r['fit_seconds']:.1f}")
    row("peak RSS MB (whole worker process)", lambda r: f"{r['peak_rss_mb']:.0f}")
    row(
        "load average before -> after (1 min)",
        lambda r: f"{r['load_average_before'][0]} -> {r['load_average_after'][0]}",
    )
    lines += [
        "",
        "Validation HR@10 per epoch:",
        "",
        "| epoch | " + " | ".join(runs) + " |",
        "|---|" + "---|" * len(runs),
    ]
    n = max(len(r["history"]) for r in runs.values())
    for i in range(n):
        cells = [
            f"{r['history'][i]['val_hr@10']:.4f}" if i < len(r["history"]) else "" for r in runs.values()
        ]
        lines.append(f"| {i + 1} | " + " | ".join(cells) + " |")
    lines += ["", f"![validation HR@10 per epoch]({path.with_suffix('.png').name})", ""]
    pairs = report.get("repeats", [])
    if len(pairs) > 1:
        lines += [
            f"Speed over {len(pairs)} repeats of the pair (ABBA order; median samples/s over epochs 2+ of "
            "each run; load average = 1 minute, before the pair):",
            "",
            "| repeat | order | Keras samples/s | NumPy samples/s | NumPy / Keras | load average |",
            "|---|---|---:|---:|---:|---:|",
        ]
        for i, pair in enumerate(pairs, 1):
            lines.append(
                f"| {i} | {' then '.join(pair['order'])} | {pair['keras']:,} | {pair['numpy']:,} | "
                f"{pair['ratio']:.3f} | {pair['load_average']} |"
            )
        med = report["repeat_medians"]
        lines += [
            f"| **median** | | **{med['keras']:,}** | **{med['numpy']:,}** | **{med['ratio']:.3f}** | |",
            "",
        ]
    path.write_text("\n".join(lines))


def write_chart(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for engine, run in report["engines"].items():
        epochs = [h["epoch"] for h in run["history"]]
        ax.plot(epochs, [h["val_hr@10"] for h in run["history"]], marker="o", label=engine)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation HR@10 (sampled, 1 + 99)")
    ax.set_title("NeuMF on MovieLens 1M: Keras vs NumPy engine")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", default=os.environ.get("NCF_DATA_DIR", "data/ml-1m"))
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--lr", type=float, default=0.002)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--repeats", type=int, default=1, help="runs of the Keras / NumPy pair (ABBA order)")
    parser.add_argument("--out", default="compare_engines", help="results file stem in bench/results")
    parser.add_argument("--worker", choices=ENGINES, help=argparse.SUPPRESS)
    parser.add_argument("--settings", help=argparse.SUPPRESS)
    parser.add_argument("--worker-out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.data_dir, json.loads(args.settings), Path(args.worker_out))
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    settings = {
        "split_seed": 0,
        "config": {"factors": 8, "layers": [64, 32, 16, 8]},
        "train_config": {
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "learning_rate": args.lr,
            "optimizer": "adam",
            "num_negatives": 4,
            "patience": 0,  # every epoch runs for both engines, so the curves are comparable
            "seed": args.seed,
            # Pinned rather than left to TrainConfig's defaults (which pretrain GMF + MLP and decay
            # weights): both engines train this one NeuMF from scratch, every epoch timed.
            "pretrain": False,
            "weight_decay": 0.0,
            "lr_schedule": "constant",
            "recent_weight": 1,  # every positive alike, as when the committed comparison was measured
        },
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    report = {
        "command": "python bench/compare_engines.py " + " ".join(sys.argv[1:]),
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "settings": settings,
    }
    engines = args.engines.split(",")
    runs = []  # (order, load average before, {engine: worker result}) per repeat
    for repeat in range(args.repeats):
        order = engines if repeat % 2 == 0 else engines[::-1]
        load = round(os.getloadavg()[0], 2)
        runs.append((order, load, {e: run_engine(e, args, settings) for e in order}))
    report["engines"] = {e: runs[0][2][e] for e in engines}
    if args.repeats > 1 and set(engines) == set(ENGINES):
        pairs = [
            {"order": order, "load_average": load}
            | {e: result[e]["median_samples_per_second"] for e in ENGINES}
            | {
                "ratio": result["numpy"]["median_samples_per_second"]
                / result["keras"]["median_samples_per_second"]
            }
            for order, load, result in runs
        ]
        report["repeats"] = pairs
        report["repeat_medians"] = {"ratio": float(np.median([p["ratio"] for p in pairs]))} | {
            e: round(float(np.median([p[e] for p in pairs]))) for e in ENGINES
        }
    (RESULTS / f"{args.out}.json").write_text(json.dumps(report, indent=2))
    write_markdown(report, RESULTS / f"{args.out}.md")
    write_chart(report, RESULTS / f"{args.out}.png")
    logger.info("wrote %s", RESULTS / f"{args.out}.md")


if __name__ == "__main__":
    main()
