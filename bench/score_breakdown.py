"""Benchmark: where the scoring step's time goes, on each data set given: the default NeuMF's network
(Keras engine's compiled all-items scorer, `KerasNCF.score_users`), masking the rated movies
(`model.topn.mask_rated`), the top-N selection (`model.topn.top_n`) and the Parquet write (one row group
per chunk, as `batch.job.write_recommendations`), timed phase by phase on `--chunks` chunks of
`--chunk-users` users spread over the users; plus the network's FLOPs per pair and the FLOP rate a
float32 matrix product reaches on this machine (the cores' practical peak).

    .venv/bin/python bench/score_breakdown.py --data ml-1m=/work/shared/data/ml-1m \\
        --data synthetic-ml-25m=/work/synth/ml-25m [--chunks 12]

Parameters are random (`init_params`, embeddings x30 so the ReLUs switch): the time does not depend on
training. Rated movies are the data set's. Writes bench/results/score_breakdown.{json,md}. The machine
may be shared: the load average is recorded.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from batch.contract import RECOMMENDATIONS, TABLE_SCHEMAS
from batch.recommend import lists_table
from model.data import DataLoader
from model.ncf.config import NCFConfig, TrainConfig
from model.ncf.keras_engine import KerasNCF
from model.ncf.params import init_params
from model.topn import available_cores, mask_rated, top_n

RESULTS = Path(__file__).parent / "results"
PHASES = ("network", "mask", "top_n", "parquet")


def flops_per_pair(config: NCFConfig) -> dict[str, int]:
    """Multiply-adds per user x movie pair of the structured all-items scorer (per-user and per-movie
    work shared over the other side is left out): the GMF dot product, the first MLP layer's add of the
    user and movie parts, every further MLP layer's matrix product, the output layer. FLOPs = 2 x MACs."""
    macs = {"gmf": config.factors if config.kind in ("gmf", "neumf") else 0}
    if config.kind in ("mlp", "neumf"):
        widths = list(config.layers)
        macs["mlp_first_layer_add"] = widths[1] // 2 if len(widths) > 1 else 0  # adds count as half a MAC
        macs["mlp_layers"] = sum(a * b for a, b in itertools.pairwise(widths[1:]))
        macs["output"] = widths[-1]
    return {**macs, "flops": 2 * sum(macs.values())}


def matmul_gflops(size: int = 2048, repeats: int = 5) -> dict[str, float]:
    """float32 (size x size) @ (size x size) GFLOP/s, median of `repeats`, NumPy (BLAS) and TensorFlow."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    a, b = (rng.random((size, size), dtype=np.float32) for _ in range(2))
    ta, tb = tf.constant(a), tf.constant(b)
    out = {}
    for name, fn in (("numpy", lambda: a @ b), ("tensorflow", lambda: tf.matmul(ta, tb).numpy())):
        fn()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        out[name] = round(2 * size**3 / float(np.median(times)) / 1e9, 1)
    return out


def breakdown(name: str, data_dir: str, chunks: int, chunk_users: int, top: int) -> dict:
    start = time.perf_counter()
    dataset = DataLoader(data_dir).load()
    known = dataset.interactions().to_csr()
    load_seconds = time.perf_counter() - start
    config = NCFConfig()
    params = init_params(config, dataset.n_users, dataset.n_items, seed=0)
    params = {k: v * 30 if k.endswith("embedding") else v for k, v in params.items()}
    model = KerasNCF(config, TrainConfig())
    model.build(dataset.n_users, dataset.n_items, params)
    starts = np.linspace(0, dataset.n_users - chunk_users, chunks + 1).astype(np.int64)
    seconds = {phase: 0.0 for phase in PHASES}
    cpu = 0.0
    pairs = 0
    workers = available_cores()
    with tempfile.TemporaryDirectory() as tmp:
        schema = TABLE_SCHEMAS[RECOMMENDATIONS]
        with pq.ParquetWriter(Path(tmp) / "recommendations.parquet", schema) as writer:
            for k, first in enumerate(starts):
                users = np.arange(first, first + chunk_users)
                t0, c0 = time.perf_counter(), time.process_time()
                scores = model.score_users(users)
                t1 = time.perf_counter()
                unrated = mask_rated(scores, known[users])
                t2 = time.perf_counter()
                items, best = top_n(scores, top, workers=workers)
                t3 = time.perf_counter()
                table = lists_table(
                    dataset.user_ids,
                    dataset.item_ids,
                    users,
                    items,
                    best,
                    np.minimum(unrated, items.shape[1]),
                )
                writer.write_table(table)
                t4, c4 = time.perf_counter(), time.process_time()
                if k == 0:  # the first chunk compiles the scorer: not timed
                    continue
                for phase, (a, b) in zip(PHASES, ((t0, t1), (t1, t2), (t2, t3), (t3, t4)), strict=True):
                    seconds[phase] += b - a
                cpu += c4 - c0
                pairs += chunk_users * dataset.n_items
    total = sum(seconds.values())
    all_pairs = dataset.n_users * dataset.n_items
    flops = flops_per_pair(config)
    return {
        "data": name,
        "users": dataset.n_users,
        "movies": dataset.n_items,
        "ratings": dataset.n_interactions,
        "load_seconds": round(load_seconds, 1),
        "timed_chunks": chunks,
        "chunk_users": chunk_users,
        "timed_pairs": pairs,
        "seconds": {phase: round(s, 3) for phase, s in seconds.items()},
        "share": {phase: round(s / total, 3) for phase, s in seconds.items()},
        "cpu_seconds": round(cpu, 3),
        "pairs_per_s": round(pairs / total),
        "network_pairs_per_s": round(pairs / seconds["network"]),
        "all_pairs": all_pairs,
        "projected_full_pass_s": round(all_pairs / (pairs / total), 1),
        "network_gflops": round(pairs * flops["flops"] / seconds["network"] / 1e9, 2),
    }


def markdown(report: dict) -> str:
    flops = report["flops_per_pair"]
    lines = [
        "# Scoring step: where the time goes",
        "",
        f"`{report['command']}` on {report['date']} ({report['machine']}; load average before "
        f"{report['load_before']}, after {report['load_after']}). Default NeuMF "
        f"(`{json.dumps(report['config'])}`), random parameters, Keras engine; top {report['top_n']}; "
        f"{report['rows'][0]['timed_chunks']} timed chunks of {report['rows'][0]['chunk_users']} users "
        "spread over the users (a first, compiling chunk untimed). Synthetic data is for speed only.",
        "",
        "| data | users | movies | timed pairs | pairs/s (all phases) | network pairs/s | network | mask | "
        "top-N | Parquet | projected full pass s | network GFLOP/s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["rows"]:
        share = r["share"]
        lines.append(
            f"| {r['data']} | {r['users']:,} | {r['movies']:,} | {r['timed_pairs']:,} | "
            f"{r['pairs_per_s'] / 1e6:.1f} M | {r['network_pairs_per_s'] / 1e6:.1f} M | "
            f"{share['network']:.0%} | {share['mask']:.0%} | {share['top_n']:.0%} | {share['parquet']:.0%} | "
            f"{r['projected_full_pass_s']:,} | {r['network_gflops']} |"
        )
    parts = ", ".join(f"{k} {v}" for k, v in flops.items() if k != "flops")
    peak = report["matmul_gflops"]
    best = max(peak.values())
    rows = report["rows"]
    lines += [
        "",
        f"FLOPs per pair of the network: {flops['flops']:,} ({parts} multiply-adds; per-user and "
        "per-movie work shared over the other side left out).",
        f"A float32 2048 x 2048 matrix product reaches {peak['numpy']} GFLOP/s with NumPy and "
        f"{peak['tensorflow']} GFLOP/s with TensorFlow on this machine's {os.cpu_count()} cores; the network "
        + ", ".join(f"on {r['data']} runs at {r['network_gflops'] / best:.0%} of that" for r in rows)
        + ".",
    ]
    if len(rows) > 1:
        lines.append(
            f"Pairs/s of {rows[-1]['data']} over {rows[0]['data']} (all phases): "
            f"{rows[-1]['pairs_per_s'] / rows[0]['pairs_per_s']:.2f}."
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", action="append", required=True, help="NAME=DIR, repeatable")
    parser.add_argument("--chunks", type=int, default=12, help="timed chunks per data set")
    parser.add_argument("--chunk-users", type=int, default=1024)
    parser.add_argument("--top-n", type=int, default=50)
    parser.add_argument("--name", default="score_breakdown")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    load_before = [round(x, 2) for x in os.getloadavg()]
    rows = []
    for spec in args.data:
        name, _, directory = spec.partition("=")
        rows.append(breakdown(name, directory, args.chunks, args.chunk_users, args.top_n))
        print(json.dumps(rows[-1]), flush=True)
    report = {
        "command": "python bench/score_breakdown.py " + " ".join(f"--data {d}" for d in args.data),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "load_before": load_before,
        "config": NCFConfig().model_dump(mode="json"),
        "top_n": args.top_n,
        "flops_per_pair": flops_per_pair(NCFConfig()),
        "matmul_gflops": matmul_gflops(),
        "rows": rows,
        "load_after": [round(x, 2) for x in os.getloadavg()],
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / f"{args.name}.md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
