"""Benchmark: score all users x all movies of ML-1M size (6,040 x 3,706 = 22.4 M pairs) with the default
NCF model (`NCFConfig()`: whatever `model.ncf.config` defines when the script runs, recorded in the results)
and keep the top N unrated movies per user, the way `ncf-batch run` does.

Compares the structured scorer (`model.ncf.scoring.score_all_items`: GMF as one matrix product, first MLP
layer split into user and item parts, cache-sized blocks, one thread per core) with a plain chunked
pair-scoring forward pass (every layer per pair, `score_pairs`) and, when TensorFlow and the Keras engine
are available, a chunked Keras `model(...)` call.

Parameters are random (`init_params`, embeddings scaled x30 so the ReLUs switch; speed does not depend on
training). Rated movies come from ML-1M when $NCF_DATA_DIR is set, else a random 4.5 % of each row.

    .venv/bin/python bench/score_all.py [--repeats 5] [--chunk-users 1024] [--top-n 50]

Writes bench/results/score_all.json and .md. The machine is shared: wall-clock medians are reported next to
CPU seconds and the load average at the time.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from model.ncf.config import NCFConfig
from model.ncf.params import init_params
from model.ncf.scoring import score_all_items, score_pairs
from model.topn import available_cores, mask_rated, top_n

RESULTS = Path(__file__).parent / "results"
N_USERS, N_ITEMS = 6040, 3706


def rated_matrix() -> tuple[sp.csr_matrix, str]:
    data_dir = os.environ.get("NCF_DATA_DIR")
    if data_dir:
        from model.data import DataLoader

        dataset = DataLoader(data_dir).load()
        return dataset.interactions().to_csr(), f"ML-1M ratings ({data_dir})"
    rng = np.random.default_rng(0)
    dense = rng.random((N_USERS, N_ITEMS)) < 0.045
    return sp.csr_matrix(dense.astype(np.float32)), "random 4.5% per row"


def timed(fn, repeats: int) -> dict:
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return {
        "wall_median_s": round(float(np.median(walls)), 3),
        "wall_min_s": round(min(walls), 3),
        "cpu_median_s": round(float(np.median(cpus)), 3),
        "wall_all_s": [round(w, 3) for w in walls],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }


def structured_top_n(params, config, rated: sp.csr_matrix, chunk: int, n: int) -> int:
    rows = 0
    for start in range(0, N_USERS, chunk):
        users = np.arange(start, min(start + chunk, N_USERS))
        scores = score_all_items(params, config, users)
        mask_rated(scores, rated[users])
        items, _ = top_n(scores, n, workers=available_cores())
        rows += items.shape[0]
    return rows


def pairs_top_n(params, config, rated: sp.csr_matrix, chunk: int, n: int) -> None:
    for start in range(0, N_USERS, chunk):
        users = np.arange(start, min(start + chunk, N_USERS))
        scores = score_pairs(
            params, config, np.repeat(users, N_ITEMS), np.tile(np.arange(N_ITEMS), len(users))
        )
        scores = scores.reshape(len(users), N_ITEMS)
        mask_rated(scores, rated[users])
        top_n(scores, n)


def keras_runs(params, config, rated: sp.csr_matrix, chunk: int, n: int) -> dict:
    """Keras engine timings: a chunked model(...) call over all pairs (scores only), and its compiled
    structured `score_users` + the same top-N; {} when TensorFlow / the Keras engine is not available."""
    try:
        from model.ncf.keras_engine import KerasNCF
    except ImportError:
        return {}
    model = KerasNCF(config)
    model.n_users, model.n_items = N_USERS, N_ITEMS
    model.build(N_USERS, N_ITEMS, params)
    pairs = chunk * N_ITEMS

    def model_call() -> None:
        users = np.repeat(np.arange(N_USERS, dtype=np.int32), N_ITEMS)
        items = np.tile(np.arange(N_ITEMS, dtype=np.int32), N_USERS)
        for start in range(0, users.shape[0], pairs):
            model.score(users[start : start + pairs], items[start : start + pairs])

    def structured() -> None:
        for start in range(0, N_USERS, chunk):
            users = np.arange(start, min(start + chunk, N_USERS))
            scores = model.score_users(users)
            mask_rated(scores, rated[users])
            top_n(scores, n, workers=available_cores())

    model_call()  # compile outside the timing
    structured()
    return {"keras_model_call_scores_only": model_call, "keras_score_users_and_top_n": structured}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--chunk-users", type=int, default=1024)
    parser.add_argument("--top-n", type=int, default=50)
    parser.add_argument("--skip-baselines", action="store_true")
    parser.add_argument("--name", default="score_all", help="results file stem in bench/results/")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)

    config = NCFConfig()  # the architecture `ncf-batch run` trains and scores by default
    params = init_params(config, N_USERS, N_ITEMS, seed=0)
    params = {k: (v * 30 if k.endswith("embedding") else v).astype(np.float32) for k, v in params.items()}
    rated, rated_source = rated_matrix()
    chunk, n = args.chunk_users, args.top_n

    results: dict = {
        "pairs": N_USERS * N_ITEMS,
        "model": config.model_dump(mode="json"),
        "chunk_users": chunk,
        "top_n": n,
        "rated": rated_source,
        "cores": len(os.sched_getaffinity(0)),
        "machine": platform.processor() or platform.machine(),
        "note": f"load average at start {os.getloadavg()} (other jobs may share the 2 cores); "
        "wall medians of `repeats` runs, CPU seconds summed over threads",
        "command": " ".join(
            ["NCF_DATA_DIR=" + os.environ.get("NCF_DATA_DIR", ""), ".venv/bin/python", *sys.argv]
        ),
        "timings": {},
    }
    results["timings"]["structured_score_and_top_n"] = timed(
        lambda: structured_top_n(params, config, rated, chunk, n), args.repeats
    )
    if not args.skip_baselines:
        results["timings"]["pairs_score_and_top_n"] = timed(
            lambda: pairs_top_n(params, config, rated, chunk, n), max(1, args.repeats // 2)
        )
        for name, fn in keras_runs(params, config, rated, chunk, n).items():
            results["timings"][name] = timed(fn, max(1, args.repeats // 2))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = [
        "# Scoring all 6,040 x 3,706 ML-1M pairs + top-N",
        "",
        f"`{results['command']}` ({results['cores']} cores, {results['note']}).",
        f"Model: the default architecture, `{json.dumps(results['model'])}`.",
        f"Rated movies: {rated_source}.",
        "`ncf-batch run` takes `keras_score_users_and_top_n` with the Keras engine and",
        "`structured_score_and_top_n` with the NumPy engine.",
        "",
        "| method | wall median (s) | wall min (s) | CPU (s) | load average after |",
        "|---|---|---|---|---|",
    ]
    for name, t in results["timings"].items():
        cells = [name, t["wall_median_s"], t["wall_min_s"], t["cpu_median_s"], t["load_average_after"]]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    (RESULTS / f"{args.name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
