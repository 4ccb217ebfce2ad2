"""Benchmark: the local executor's scoring step (`batch.job.write_recommendations`) on the first users of a
data set: its wall time, pairs/s, and how much it raises the process's resident memory above the loaded
data and the compiled model, sampled every 20 ms from /proc/self/status (VmRSS).

What the step holds is set by the chunk and the catalogue, not by the number of users
(docs/operations.md#memory): one chunk's (chunk_users, n_movies) float32 scores and their selection
temporaries, with more than one core the next chunk's scores too (`batch.recommend.scored_chunks`), and
one chunk's lists being written (`batch.recommend.ListWriter`); so a prefix of a few chunks measures it.
The model is the default NeuMF in the Keras engine with random parameters (`init_params`), its scorer
compiled before the step as in the job.

    .venv/bin/python bench/score_step_memory.py --data ml-1m=/work/shared/data/ml-1m \\
        --data synthetic-ml-25m=/work/synth/ml-25m [--users 8192] [--chunk-users 1024]

Writes bench/results/score_step_memory.{json,md}. The machine may be shared: the load average is recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from batch.contract import RunWriter
from batch.job import PausePoint, write_recommendations
from batch.settings import RunSettings
from model.data import DataLoader
from model.ncf.config import NCFConfig
from model.ncf.keras_engine import KerasNCF
from model.ncf.params import init_params
from model.topn import available_cores

RESULTS = Path(__file__).parent / "results"


def rss_mb() -> float:
    """This process's resident memory now (VmRSS), MB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


class Prefix:
    """The first `n_users` users of a dataset, as much of `Dataset` as the scoring step reads."""

    def __init__(self, dataset, n_users: int) -> None:
        self.n_users, self.n_items = n_users, dataset.n_items
        self.user_ids, self.item_ids = dataset.user_ids[:n_users], dataset.item_ids


def measure(data_dir: Path, users: int, chunk_users: int) -> dict:
    """One scoring step over the first `users` users of `data_dir`; see the module docstring."""
    full = DataLoader(data_dir).load()
    n = min(users, full.n_users)
    known = sp.csr_matrix(full.interactions().to_csr()[:n])
    config = NCFConfig()
    model = KerasNCF(config)
    model.build(full.n_users, full.n_items, init_params(config, full.n_users, full.n_items, seed=0))
    model.score_users(np.arange(1))  # compiled before the step, as the job's quality gate does
    output = Path(tempfile.mkdtemp(prefix="score-step-memory-"))
    settings = RunSettings(data_dir=data_dir, output_dir=output, chunk_users=chunk_users)
    writer = RunWriter(output)
    before = rss_mb()
    peak, done = [before], threading.Event()

    def sample() -> None:
        while not done.wait(0.02):
            peak[0] = max(peak[0], rss_mb())

    sampler = threading.Thread(target=sample)
    sampler.start()
    start = time.perf_counter()
    try:
        rows, _ = write_recommendations(writer, model, Prefix(full, n), known, settings, PausePoint())
    finally:
        wall = time.perf_counter() - start
        done.set()
        sampler.join()
        writer.abort()
    return {
        "users": n,
        "movies": full.n_items,
        "chunk_users": chunk_users,
        "rows": rows,
        "wall_s": round(wall, 2),
        "pairs_per_s": round(n * full.n_items / wall),
        "rss_before_mb": round(before, 1),
        "rss_peak_mb": round(peak[0], 1),
        "rss_increase_mb": round(peak[0] - before, 1),
        "one_score_matrix_mb": round(chunk_users * full.n_items * 4 / 2**20, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", action="append", required=True, help="LABEL=DIR, repeatable")
    parser.add_argument("--users", type=int, default=8192)
    parser.add_argument("--chunk-users", type=int, default=1024)
    args = parser.parse_args()
    load_start = [round(x, 2) for x in os.getloadavg()]
    entries = {}
    for item in args.data:
        label, _, folder = item.partition("=")
        entries[label] = measure(Path(folder), args.users, args.chunk_users)
        print(label, entries[label], flush=True)
    result = {
        "command": "python bench/score_step_memory.py "
        + " ".join(f"--data {d}" for d in args.data)
        + f" --users {args.users} --chunk-users {args.chunk_users}",
        "cores": available_cores(),
        "load_average_start": load_start,
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
        "data": entries,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "score_step_memory.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "score_step_memory.md").write_text(render(result))


def render(result: dict) -> str:
    lines = [
        "# Scoring step memory",
        "",
        "Generated by bench/score_step_memory.py: the local executor's scoring step on the first users of "
        "each data set (default NeuMF, Keras engine, random parameters, scorer compiled before the step); "
        f"resident memory sampled every 20 ms. `{result['command']}`; {result['cores']} cores, shared (load "
        f"average {result['load_average_start']} at the start, {result['load_average_end']} at the end).",
        "",
        "| data | users x movies | chunk | wall (s) | pairs/s | RSS before (MB) | peak (MB) | increase (MB) "
        "| one chunk's scores (MB) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, e in result["data"].items():
        lines.append(
            f"| {label} | {e['users']:,} x {e['movies']:,} | {e['chunk_users']} | {e['wall_s']} | "
            f"{e['pairs_per_s']:,} | {e['rss_before_mb']:,} | {e['rss_peak_mb']:,} | "
            f"{e['rss_increase_mb']:,} | {e['one_score_matrix_mb']:,} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
