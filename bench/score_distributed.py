"""Benchmark: the scoring step with the local executor vs the Ray executor (`batch.distributed`).

Both score every user (or the first `--max-users`) x every movie, rated movies masked, the top
`candidates` (default 200) kept and their first N, with the default NCF architecture (`NCFConfig()`) in
the Keras engine (the job's default) and random parameters (speed does not depend on training; embeddings
scaled x30 so the ReLUs switch), and write the Parquet output into a staged run, as `ncf-batch run` does:

- local: `batch.job.write_recommendations` in this process with the model loaded from the saved model
  directory and its scorer compiled by one call before the step (in the job the quality gate's checks of
  the published model compile it before the scoring step); one `candidates.parquet` and one
  `recommendations.parquet`;
- ray: `batch.distributed.write_recommendations_ray` on a local Ray cluster already running
  (`ray.init(num_cpus=cores)`, as a KubeRay cluster is up before its job starts), with a `ScorerPool`
  whose actors were started, have imported the engine and have compiled an untrained model of the run's
  sizes (`ScorerPool.prepare`) before the step, as the job has them do while it trains; each actor sets
  the saved parameters into that model inside the timed step. The pool's start-up and the preparation are
  reported beside it (`pool_start_s`, `prepare_s`);
- ray_cold: the same with the pool started inside the timed step (a job whose training is too short to
  hide the actors' start).

Runs are interleaved (local, ray, ray_cold per repeat) so drifting load hits each alike; a fresh pool per
run. Pairs/s = users x movies / wall seconds of the median run. The worker peak RSS is the largest
`ru_maxrss` an actor reports. `--max-users` scores a prefix of the users: per-pair work is the same, and
the Ray executor's fixed costs weigh more on fewer users, so the ratio on a prefix is a lower bound of the
ratio on all users.

    NCF_DATA_DIR=/path/to/ml-1m .venv/bin/python bench/score_distributed.py --label ml-1m [--repeats 3]
    NCF_DATA_DIR=/path/to/synthetic-ml-20m .venv/bin/python bench/score_distributed.py \\
        --label ml-20m-synthetic --max-users 8000

Each run adds (or replaces) its label's entry of bench/results/score_distributed.json and rewrites
score_distributed.md from every entry. The machine is shared: the load average is recorded.
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
import scipy.sparse as sp

from batch.contract import MODEL_DIR, RunWriter
from batch.distributed import ScorerPool, write_recommendations_ray
from batch.job import PausePoint, write_recommendations
from batch.settings import RunSettings
from batch.steps import peak_rss_mb
from model.base import load_model
from model.data import DataLoader
from model.ncf.config import NCFConfig
from model.ncf.keras_engine import KerasNCF
from model.ncf.params import init_params
from model.topn import available_cores

RESULTS = Path(__file__).parent / "results"
EXECUTORS = ("local", "ray", "ray_cold")


class Prefix:
    """The first `n_users` users of a dataset, as much of `Dataset` as the scoring step reads."""

    def __init__(self, dataset, n_users: int) -> None:
        self.n_users, self.n_items = n_users, dataset.n_items
        self.user_ids, self.item_ids = dataset.user_ids[:n_users], dataset.item_ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label", required=True, help="entry name in the results (e.g. ml-1m)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--shards-per-worker", type=int, default=4)
    parser.add_argument("--chunk-users", type=int, default=1024)
    parser.add_argument("--top-n", type=int, default=50)
    parser.add_argument("--max-users", type=int, default=None, help="score only the first users")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    import ray

    data_dir = Path(os.environ["NCF_DATA_DIR"])
    full = DataLoader(data_dir).load()
    known_all = full.interactions().to_csr()
    n_users = min(args.max_users or full.n_users, full.n_users)
    dataset = Prefix(full, n_users) if n_users < full.n_users else full
    known = sp.csr_matrix(known_all[:n_users])
    config = NCFConfig()
    params = init_params(config, full.n_users, full.n_items, seed=0)
    params = {k: (v * 30 if k.endswith("embedding") else v).astype(np.float32) for k, v in params.items()}
    model = KerasNCF(config)
    model.n_users, model.n_items = full.n_users, full.n_items
    model.build(full.n_users, full.n_items, params)
    pairs = n_users * full.n_items
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
        model.save(writer.path(MODEL_DIR), user_ids=full.user_ids, item_ids=full.item_ids)
        return writer

    def local() -> dict:
        writer = staged()
        loaded = load_model(writer.path(MODEL_DIR))
        loaded.score_users(np.arange(1))  # compiled before the step, as the job's quality gate does
        start = time.perf_counter()
        rows, _ = write_recommendations(writer, loaded, dataset, known, settings, PausePoint())
        wall = time.perf_counter() - start
        writer.abort()
        return {"wall_s": wall, "rows": rows}

    def distributed(cold: bool) -> dict:
        writer = staged()
        pool = None if cold else ScorerPool(settings)
        pool_start = None if cold else pool.wait_ready()
        if pool is not None:
            pool.prepare(settings, full.n_users, full.n_items)
            pool.prepared_s()
        start = time.perf_counter()
        report = write_recommendations_ray(writer, dataset, known, settings, pool=pool)
        wall = time.perf_counter() - start
        if pool is not None:
            pool.close()
        writer.abort()
        phases = dict(report.phases)
        if pool_start is not None:
            phases["pool_start_s"] = round(pool_start, 3)
        return {
            "wall_s": wall,
            "rows": report.rows,
            "worker_peak_rss_mb": report.worker_peak_rss_mb,
            "threads_per_worker": report.threads_per_worker,
            "phases": phases,
        }

    runs: dict[str, list[dict]] = {name: [] for name in EXECUTORS}
    for _ in range(args.repeats):
        runs["local"].append(local())
        runs["ray"].append(distributed(cold=False))
        runs["ray_cold"].append(distributed(cold=True))
    ray.shutdown()
    shutil.rmtree(tmp, ignore_errors=True)
    assert len({r["rows"] for results in runs.values() for r in results}) == 1

    summary = {}
    for name, results in runs.items():
        median_run = sorted(results, key=lambda r: r["wall_s"])[len(results) // 2]
        summary[name] = {
            "wall_median_s": round(statistics.median(r["wall_s"] for r in results), 3),
            "wall_all_s": [round(r["wall_s"], 3) for r in results],
            "pairs_per_s": round(pairs / median_run["wall_s"]),
        }
        if name != "local":
            summary[name]["worker_peak_rss_mb"] = max(r["worker_peak_rss_mb"] for r in results)
            summary[name]["threads_per_worker"] = max(r["threads_per_worker"] for r in results)
            summary[name]["phases_of_median_run"] = median_run["phases"]
    entry = {
        "command": " ".join(["NCF_DATA_DIR=" + str(data_dir), ".venv/bin/python", *sys.argv]),
        "users": n_users,
        "users_in_dataset": full.n_users,
        "movies": full.n_items,
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
        "ray_over_local_pairs_per_s": round(
            summary["ray"]["pairs_per_s"] / summary["local"]["pairs_per_s"], 3
        ),
        "ray_cold_over_local_pairs_per_s": round(
            summary["ray_cold"]["pairs_per_s"] / summary["local"]["pairs_per_s"], 3
        ),
        "driver_peak_rss_mb": round(peak_rss_mb(), 1),
    }
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "score_distributed.json"
    entries = json.loads(path.read_text()) if path.exists() else {}
    if "command" in entries:  # an earlier single-entry layout
        entries = {}
    entries[args.label] = entry
    path.write_text(json.dumps(entries, indent=2) + "\n")
    (RESULTS / "score_distributed.md").write_text(render(entries))
    print(render({args.label: entry}))


def render(entries: dict[str, dict]) -> str:
    lines = [
        "# Scoring step: local executor vs Ray executor",
        "",
        "Default NeuMF architecture, Keras engine, random parameters, top N written as Parquet into a staged "
        "run. `local`: the model's scorer compiled before the step, as the job's quality gate does. `ray`: "
        "actors started (engine imported) and prepared (an untrained model of the run's sizes compiled) "
        "before the step, as the job has them do while it trains; the saved parameters set into it inside "
        "the step. `ray_cold`: actors started inside the step, not prepared. Generated by "
        "bench/score_distributed.py.",
    ]
    for label, e in entries.items():
        t = e["timings"]
        threads = t["ray"].get("threads_per_worker", "?")
        lines += [
            "",
            f"## {label}",
            "",
            f"`{e['command']}`: {e['users']:,} of {e['users_in_dataset']:,} users x {e['movies']:,} movies = "
            f"{e['pairs']:,} pairs, top {e['top_n']}, {e['rows']:,} rows; {e['cores']} cores shared with "
            f"other jobs (load average {e['load_average_start']} at the start, {e['load_average_end']} at "
            f"the end); Ray: {e['workers']} actors x 1 CPU ({threads} compute threads each), "
            f"{e['shards']} shards.",
            "",
            "| executor | wall median (s) | all runs (s) | pairs/s | / local | peak RSS per worker (MB) |",
            "|---|---:|---|---:|---:|---:|",
        ]
        for name in EXECUTORS:
            ratio = t[name]["pairs_per_s"] / t["local"]["pairs_per_s"]
            rss = t[name].get("worker_peak_rss_mb", "")
            lines.append(
                f"| {name} | {t[name]['wall_median_s']} | {t[name]['wall_all_s']} | "
                f"{t[name]['pairs_per_s']:,} | {ratio:.2f}x | {rss} |"
            )
        lines += [
            "",
            "Where the Ray steps' time went (median run, seconds; `batch.distributed.scoring_phases`):",
            "",
        ]
        keys = list(t["ray"]["phases_of_median_run"])
        lines += ["| executor | " + " | ".join(keys) + " |", "|---|" + "---:|" * len(keys)]
        for name in ("ray", "ray_cold"):
            phases = t[name]["phases_of_median_run"]
            lines.append(f"| {name} | " + " | ".join(str(phases.get(k, "")) for k in keys) + " |")
        lines += ["", f"Driver peak RSS (this process, every executor): {e['driver_peak_rss_mb']} MB."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
