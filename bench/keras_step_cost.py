"""Keras engine training speed against embedding-table size: this checkout's engine, with dense and with
lazy embedding updates (optionally also a baseline checkout's), the default NeuMF, on ML-1M's tables and
on ML-20M-sized ones; writes bench/results/keras_step_cost.{json,md}.

    .venv/bin/python bench/keras_step_cost.py --data-dir /work/shared/data/ml-1m --repeats 3 \\
        [--baseline /tmp/other-checkout]

Engines: "dense" and "lazy" (this checkout's, `TrainConfig.embedding_updates` "dense" (Keras' own
optimizer) / "lazy" (`model.ncf.keras_optimizer.LazyOptimizer`)), and "baseline" (the `--baseline`
checkout's `KerasNCF`, as it is) when given.
Cases (same number of samples, `--samples`, rounded down to whole batches):
- ml1m: ML-1M's tables (6,040 users x 3,706 items) and the first samples of one shuffled epoch of real
  training examples (leave-one-out train part, the default negatives and recency weighting);
- ml20m-tables: ML-20M-sized tables (138,493 users x 26,744 items) and the same labels with users and
  items drawn uniformly at random (synthetic: only the speed is of interest; uniform draws make nearly
  every example's row distinct, the most rows a batch can touch);
- ml1m-rowwise (lazy only): as ml1m, with lazy updates computed row-wise
  (`model.ncf.keras_optimizer.WHOLE_TABLE_ROWS` = 0; ML-1M's tables are otherwise updated by masked
  whole-table passes, which is quicker there): how the row-wise step's cost changes from ML-1M's tables
  to ML-20M's.
Model: `NCFConfig()` and `TrainConfig()` defaults (NeuMF 64 factors, layers 128-64-32, Adam, weight decay
0.1, batches of 4096), pretraining off. Each (case, engine) runs in its own process (`--worker`) with the
engine's checkout first on `PYTHONPATH`: one `train_epoch` over the samples to compile, then `--passes`
timed ones; its figure is the median samples/s of those passes, and its peak RSS the process' max RSS
(TensorFlow included). The engines' order alternates from one case to the next (forward, then reversed),
so that they see the same drift in what else the machine runs; the medians over `--repeats` processes
are the figures to quote. Load averages are recorded around every process.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CHECKOUT = HERE.parent
RESULTS = HERE / "results"
TABLES = {"ml1m": None, "ml20m-tables": (138_493, 26_744), "ml1m-rowwise": None}  # None: the data's own
LAZY_ONLY = {"ml1m-rowwise"}  # cases run for the lazy engine only


def train_config(updates: str | None):
    """`TrainConfig()` without pretraining, with `embedding_updates` = `updates` unless None (through a
    subclass while `TrainConfig` has no such field)."""
    from model.ncf.config import TrainConfig

    if updates is None:
        return TrainConfig(pretrain=False)
    if "embedding_updates" in TrainConfig.model_fields:
        return TrainConfig(pretrain=False, embedding_updates=updates)

    class WithUpdates(TrainConfig):
        embedding_updates: str = updates

    return WithUpdates(pretrain=False)


def worker(case: str, updates: str | None, data_dir: str, samples: int, passes: int, out: Path) -> None:
    """Time the engine importable as `model` (the checkout first on PYTHONPATH); write JSON to `out`."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np

    from model.data import DataLoader, NegativeSampler, leave_one_out
    from model.ncf.config import NCFConfig
    from model.ncf.keras_engine import KerasNCF
    from model.ncf.params import init_params

    if case == "ml1m-rowwise":
        import model.ncf.keras_optimizer as keras_optimizer

        keras_optimizer.WHOLE_TABLE_ROWS = 0
    config, train = NCFConfig(), train_config(updates)
    split = leave_one_out(DataLoader(data_dir).load(), seed=0)
    sampler = NegativeSampler(
        split.train,
        num_negatives=train.num_negatives,
        seed=0,
        recent_fraction=train.recent_fraction,
        recent_weight=train.recent_weight,
    )
    users, items, labels = sampler.epoch(1)
    batch = train.batch_size
    n = min(samples, users.shape[0]) // batch * batch
    order = np.random.default_rng(0).permutation(users.shape[0])[:n]
    users, items, labels = users[order], items[order], labels[order]
    n_users, n_items = TABLES[case] or (split.n_users, split.n_items)
    if TABLES[case]:
        rng = np.random.default_rng(1)
        users = rng.integers(0, n_users, n).astype(np.int32)
        items = rng.integers(0, n_items, n).astype(np.int32)
    model = KerasNCF(config, train)
    model.build(n_users, n_items, init_params(config, n_users, n_items, seed=0))
    rss_built = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    model.train_epoch(users, items, labels, batch)  # compiles the shapes
    first = time.perf_counter() - start
    seconds, cpu = [], []
    for _ in range(passes):
        cpu_start, start = time.process_time(), time.perf_counter()
        loss = model.train_epoch(users, items, labels, batch)
        seconds.append(time.perf_counter() - start)
        cpu.append(time.process_time() - cpu_start)
    out.write_text(
        json.dumps(
            {
                "samples": int(n),
                "n_users": int(n_users),
                "n_items": int(n_items),
                "first_pass_s": round(first, 3),
                "seconds": [round(s, 3) for s in seconds],
                "cpu_seconds": [round(s, 3) for s in cpu],
                "samples_per_s": round(n / statistics.median(seconds)),
                "last_loss": round(float(loss), 5),
                "max_rss_mb_after_build": round(rss_built / 1024),
                "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            }
        )
    )


def run_worker(checkout: Path, updates: str | None, case: str, args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        env = {**os.environ, "PYTHONPATH": str(checkout)}
        command = [sys.executable, str(Path(__file__).resolve()), "--worker", case, "--out", str(out)]
        command += ["--data-dir", args.data_dir, "--samples", str(args.samples), "--passes", str(args.passes)]
        command += ["--updates", updates] if updates else []
        load_before = os.getloadavg()
        subprocess.run(command, env=env, cwd=checkout, check=True)
        result = json.loads(out.read_text())
    result["load_before"] = [round(x, 2) for x in load_before]
    result["load_after"] = [round(x, 2) for x in os.getloadavg()]
    return result


def ratio(cases: dict, case: str, over: str, engine: str, key: str = "samples_per_s_median") -> float:
    """`key` (a median rate) of `case` over that of `over`, for `engine`."""
    return round(cases[case][engine][key] / cases[over][engine][key], 3)


def summarise(cases: dict) -> None:
    """Add each cell's medians: samples/s (wall clock), samples per CPU-second (all of the process'
    threads: less sensitive than wall clock to how much of the 2 cores other jobs leave) and peak RSS."""
    for cells in cases.values():
        for cell in cells.values():
            runs = cell["runs"]
            cell["samples_per_s_median"] = round(statistics.median(r["samples_per_s"] for r in runs))
            per_cpu = [r["samples"] / statistics.median(r["cpu_seconds"]) for r in runs]
            cell["samples_per_cpu_s_median"] = round(statistics.median(per_cpu))
            cell["max_rss_mb_max"] = max(r["max_rss_mb"] for r in runs)


def shares(cases: dict, key: str) -> dict[str, float]:
    """ML-20M-sized tables' rate over ML-1M's, per engine (and row-wise over row-wise for lazy)."""
    out = {e: ratio(cases, "ml20m-tables", "ml1m", e, key) for e in cases["ml20m-tables"]}
    out["lazy, row-wise on both"] = ratio(cases, "ml20m-tables", "ml1m-rowwise", "lazy", key)
    return out


def markdown(report: dict) -> str:
    lines = [
        "# Keras engine: training speed against embedding-table size",
        "",
        f"Generated by `bench/keras_step_cost.py` on {report['date']} ({report['machine']}); default NeuMF "
        f"(pretraining off), {report['samples']:,} samples per pass, batches of 4096. Baseline: "
        f"{report['baseline']}; dense: `embedding_updates` dense (the default, Keras' own Adam); lazy: "
        "`embedding_updates` lazy (`LazyOptimizer`, the batch's rows only). Medians "
        f"over {report['repeats']} processes per cell (each the median of {report['passes']} timed passes "
        "after a compiling one), engines alternating. The machine was shared: 1-minute load averages "
        f"{report['load_range'][0]}-{report['load_range'][1]} on 2 cores.",
        "",
        "Samples per CPU-second count the time of all the process' threads: less sensitive than wall "
        "clock to how much of the 2 cores other jobs leave (TensorFlow uses both when it can), so the figure "
        "to compare engines by on a shared machine.",
        "",
        "| case | tables (users x items) | engine | samples/s | per process (M/s) | samples per CPU-s "
        "| peak RSS MB |",
        "|---|---|---|---:|---|---:|---:|",
    ]
    for case, cells in report["cases"].items():
        for engine, cell in cells.items():
            runs = cell["runs"]
            per = ", ".join(f"{r['samples_per_s'] / 1e6:.3f}" for r in runs)
            lines.append(
                f"| {case} | {runs[0]['n_users']:,} x {runs[0]['n_items']:,} | {engine} | "
                f"{cell['samples_per_s_median'] / 1e6:.3f} M | {per} | "
                f"{cell['samples_per_cpu_s_median'] / 1e6:.3f} M | {cell['max_rss_mb_max']:,} |"
            )
    lines += [
        "",
        "Rate on ML-20M-sized tables as a share of the rate on ML-1M's (medians; samples/s, samples per "
        "CPU-second):",
        "",
    ]
    wall, cpu = report["ml20m_over_ml1m"], report["ml20m_over_ml1m_cpu"]
    lines += [f"- {engine}: {wall[engine]:.2f}, {cpu[engine]:.2f}" for engine in wall]
    lines += [
        "",
        "Per process, the JSON has every timed pass and its CPU seconds, the compiling pass' time and the "
        "load average (1 min) before the process started and after it ended.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--data-dir", default=os.environ.get("NCF_DATA_DIR"), help="MovieLens 1M directory")
    parser.add_argument("--baseline", type=Path, help="checkout of the engine to compare with (e.g. main)")
    parser.add_argument("--samples", type=int, default=2_000_000, help="samples per timed pass")
    parser.add_argument("--passes", type=int, default=2, help="timed passes per process")
    parser.add_argument("--repeats", type=int, default=3, help="processes per case and engine")
    parser.add_argument("--out", type=Path, default=RESULTS / "keras_step_cost", help="results stem")
    parser.add_argument("--worker", choices=sorted(TABLES), help=argparse.SUPPRESS)
    parser.add_argument("--updates", choices=("dense", "lazy"), help=argparse.SUPPRESS)
    parser.add_argument("--render", type=Path, help="only rewrite the tables of an earlier run's JSON")
    args = parser.parse_args()
    if args.render:
        report = json.loads(args.render.read_text())
        summarise(report["cases"])
        report["ml20m_over_ml1m"] = shares(report["cases"], "samples_per_s_median")
        report["ml20m_over_ml1m_cpu"] = shares(report["cases"], "samples_per_cpu_s_median")
        report.pop("ml20m_over_ml1m_rowwise", None)
        write(report, args.render.with_suffix(""))
        return
    if not args.data_dir:
        parser.error("--data-dir (or NCF_DATA_DIR) is required")
    if args.worker:
        worker(args.worker, args.updates, args.data_dir, args.samples, args.passes, args.out)
        return
    engines = {"dense": (CHECKOUT, "dense"), "lazy": (CHECKOUT, "lazy")}
    if args.baseline:
        engines = {"baseline": (args.baseline.resolve(), None), **engines}
    names = list(engines)
    cases: dict[str, dict[str, dict]] = {
        case: {e: {"runs": []} for e in names if case not in LAZY_ONLY or e == "lazy"} for case in TABLES
    }
    turn = 0
    for repeat in range(args.repeats):
        for case, cells in cases.items():
            for engine in list(cells) if turn % 2 == 0 else list(cells)[::-1]:
                result = run_worker(*engines[engine], case, args)
                print(f"repeat {repeat} {case} {engine}: {result}", flush=True)
                cells[engine]["runs"].append(result)
            turn += 1
    summarise(cases)
    runs = [r for cells in cases.values() for cell in cells.values() for r in cell["runs"]]
    loads = [x for r in runs for x in (r["load_before"][0], r["load_after"][0])]
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "baseline": str(args.baseline) if args.baseline else "none",
        "samples": cases["ml1m"][names[0]]["runs"][0]["samples"],
        "passes": args.passes,
        "repeats": args.repeats,
        "load_range": [min(loads), max(loads)],
        "cases": cases,
        "ml20m_over_ml1m": shares(cases, "samples_per_s_median"),
        "ml20m_over_ml1m_cpu": shares(cases, "samples_per_cpu_s_median"),
    }
    write(report, args.out)


def write(report: dict, stem: Path) -> None:
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    stem.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
