"""Benchmark: the scoring step on ML-1M with the local executor vs the Ray executor (`batch.distributed`).

Both score every user x every movie of ML-1M (6,040 x 3,706 = 22.4 M pairs), rated movies masked, top N
kept, with the default NCF architecture (`NCFConfig()`) in the Keras engine (the job's default) and
random parameters (speed does not depend on training; embeddings scaled x30 so the ReLUs switch), and
write the Parquet output into a staged run, as `ncf-batch run` does:

- local: `load_model` from the saved model directory + `batch.job.write_recommendations` in this process
  (one `recommendations.parquet`);
- ray: `batch.distributed.write_recommendations_ray` on a local Ray cluster already running
  (`ray.init(num_cpus=cores)`, as a KubeRay cluster is up before its job starts): the actors start, each
  loads the model, and the shards are scored into `recommendations/`.

Each timing is the whole step, model loading and XLA compilation included, so the Ray figure carries its
actor start-up. Pairs/s = 22.4 M / wall seconds; the worker peak RSS is the largest `ru_maxrss` an actor
reports.

    NCF_DATA_DIR=/path/to/ml-1m .venv/bin/python bench/score_distributed.py [--repeats 3]

Writes bench/results/score_distributed.{json,md}. The machine is shared: the load average is recorded.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from batch.contract import MODEL_DIR, RunWriter
from batch.distributed import write_recommendations_ray
from batch.job import PausePoint, write_recommendations
from batch.settings import RunSettings
from model.base import load_model
from model.data import DataLoader
from model.ncf.config import NCFConfig
from model.ncf.keras_engine import KerasNCF
from model.ncf.params import init_params
from model.topn import available_cores

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--shards-per-worker", type=int, default=4)
    parser.add_argument("--chunk-users", type=int, default=1024)
    parser.add_argument("--top-n", type=int, default=50)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    import ray

    data_dir = Path(os.environ["NCF_DATA_DIR"])
    dataset = DataLoader(data_dir).load()
    known = dataset.interactions().to_csr()
    config = NCFConfig()
    params = init_params(config, dataset.n_users, dataset.n_items, seed=0)
    params = {k: (v * 30 if k.endswith("embedding") else v).astype(np.float32) for k, v in params.items()}
    model = KerasNCF(config)
    model.n_users, model.n_items = dataset.n_users, dataset.n_items
    model.build(dataset.n_users, dataset.n_items, params)
    pairs = dataset.n_users * dataset.n_items
    tmp = Path(tempfile.mkdtemp(prefix="score-distributed-"))
    settings = RunSettings(
        data_dir=data_dir,
        output_dir=tmp,
        top_n=args.top_n,
        chunk_users=args.chunk_users,
        executor="ray",
        ray={"workers": args.workers, "shards_per_worker": args.shards_per_worker},
    )
    cores = available_cores()
    load_start = [round(x, 2) for x in os.getloadavg()]
    ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False)

    def staged() -> RunWriter:
        writer = RunWriter(tmp)
        model.save(writer.path(MODEL_DIR), user_ids=dataset.user_ids, item_ids=dataset.item_ids)
        return writer

    def local() -> dict:
        writer = staged()
        start = time.perf_counter()
        loaded = load_model(writer.path(MODEL_DIR))
        rows, _ = write_recommendations(writer, loaded, dataset, known, settings, PausePoint())
        wall = time.perf_counter() - start
        writer.abort()
        return {"wall_s": wall, "rows": rows}

    def distributed() -> dict:
        writer = staged()
        start = time.perf_counter()
        report = write_recommendations_ray(writer, dataset, known, settings)
        wall = time.perf_counter() - start
        writer.abort()
        return {"wall_s": wall, "rows": report.rows, "worker_peak_rss_mb": report.worker_peak_rss_mb}

    runs: dict[str, list[dict]] = {"local": [], "ray": []}
    for _ in range(args.repeats):  # interleaved, so drifting load hits both alike
        runs["local"].append(local())
        runs["ray"].append(distributed())
    ray.shutdown()
    shutil.rmtree(tmp, ignore_errors=True)
    assert runs["local"][0]["rows"] == runs["ray"][0]["rows"]

    summary = {}
    for name, results in runs.items():
        median = statistics.median(r["wall_s"] for r in results)
        summary[name] = {
            "wall_median_s": round(median, 3),
            "wall_all_s": [round(r["wall_s"], 3) for r in results],
            "pairs_per_s": round(pairs / median),
        }
    summary["ray"]["worker_peak_rss_mb"] = max(r["worker_peak_rss_mb"] for r in runs["ray"])
    ratio = summary["ray"]["pairs_per_s"] / summary["local"]["pairs_per_s"]
    result = {
        "command": " ".join(["NCF_DATA_DIR=" + str(data_dir), ".venv/bin/python", *sys.argv]),
        "pairs": pairs,
        "rows": runs["local"][0]["rows"],
        "model": config.model_dump(mode="json"),
        "engine": "keras",
        "cores": cores,
        "workers": args.workers,
        "shards": args.workers * args.shards_per_worker,
        "chunk_users": args.chunk_users,
        "top_n": args.top_n,
        "load_average_start": load_start,
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
        "timings": summary,
        "ray_over_local_pairs_per_s": round(ratio, 3),
        "driver_peak_rss_mb": round(__import__("batch.steps").steps.peak_rss_mb(), 1),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "score_distributed.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# Scoring step on ML-1M: local executor vs Ray executor",
        "",
        f"`{result['command']}` ({cores} cores shared with other jobs; load average "
        f"{result['load_average_start']} at the start, {result['load_average_end']} at the end).",
        f"Default architecture, Keras engine, random parameters; {pairs:,} pairs, top {args.top_n}, "
        f"{result['rows']:,} rows. Ray: a local cluster already up, {args.workers} actors x 1 CPU, "
        f"{result['shards']} shards; each wall time includes loading the model and compiling.",
        "",
        "| executor | wall median (s) | all runs (s) | pairs/s |",
        "|---|---:|---|---:|",
    ]
    for name, t in summary.items():
        lines.append(f"| {name} | {t['wall_median_s']} | {t['wall_all_s']} | {t['pairs_per_s']:,} |")
    lines += [
        "",
        f"Ray / local pairs/s: **{result['ray_over_local_pairs_per_s']}x**. "
        f"Peak RSS per Ray worker: {summary['ray']['worker_peak_rss_mb']} MB; "
        f"driver (this process, both executors): {result['driver_peak_rss_mb']} MB.",
    ]
    (RESULTS / "score_distributed.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
