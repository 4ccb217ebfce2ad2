"""What the job's outputs beyond the top-N lists cost at a large shape: similar movies (from the published
model's item embeddings, the default source), each user's recent history, and the deeper candidate lists
(the top-N selection at `candidates` depth instead of `top_n`, timed on sampled chunks of real scores,
the two depths in alternating order, and projected to every user).

    .venv/bin/python bench/extras_at_scale.py --data-dir /work/synth/ml-25m \\
        --model-dir OUTPUT/runs/RUN/model [--chunks 8]

The model is a run's published model (e.g. the ML-25M-shaped run of bench/scale.py). Writes
bench/results/extras_at_scale.{json,md}; synthetic data is for speed only.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from batch.contract import HISTORY, RunWriter
from batch.job import write_similar_movies
from batch.settings import RunSettings
from batch.similar import history_table
from model.base import load_model
from model.data import DataLoader
from model.topn import available_cores, mask_rated, top_n

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--chunks", type=int, default=8)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    load_before = [round(x, 2) for x in os.getloadavg()]
    dataset = DataLoader(args.data_dir).load()
    known = dataset.interactions().to_csr()
    model = load_model(args.model_dir)
    settings = RunSettings(data_dir=args.data_dir)
    seconds: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        writer = RunWriter(Path(tmp))
        start = time.perf_counter()
        source, similar_rows = write_similar_movies(
            writer, model, dataset.interactions(), dataset.item_ids, settings
        )
        seconds["similar"] = time.perf_counter() - start
        start = time.perf_counter()
        writer.write_table(HISTORY, history_table(dataset, settings.history))
        seconds["history"] = time.perf_counter() - start
        writer.abort()
    chunk = settings.chunk_users
    starts = np.linspace(0, dataset.n_users - chunk, args.chunks).astype(np.int64)
    selection = {settings.top_n: 0.0, settings.depth: 0.0}
    for k, first in enumerate(starts):
        users = np.arange(first, first + chunk)
        scores = model.score_users(users)
        mask_rated(scores, known[users])
        for depth in list(selection) if k % 2 == 0 else list(selection)[::-1]:  # ABBA: order effects cancel
            start = time.perf_counter()
            top_n(scores, depth, workers=available_cores())
            selection[depth] += time.perf_counter() - start
    scale = dataset.n_users / (chunk * args.chunks)
    seconds[f"top-{settings.top_n} selection, all users (projected)"] = selection[settings.top_n] * scale
    seconds[f"top-{settings.depth} selection, all users (projected)"] = selection[settings.depth] * scale
    extra = (
        seconds["similar"]
        + seconds["history"]
        + seconds[f"top-{settings.depth} selection, all users (projected)"]
        - seconds[f"top-{settings.top_n} selection, all users (projected)"]
    )
    result = {
        "command": f"python bench/extras_at_scale.py --data-dir {args.data_dir} --model-dir MODEL "
        f"--chunks {args.chunks}",
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "users": dataset.n_users,
        "movies": dataset.n_items,
        "ratings": dataset.n_interactions,
        "similar_source": source,
        "similar_k": settings.similar_k,
        "similar_rows": similar_rows,
        "seconds": {k: round(v, 2) for k, v in seconds.items()},
        "extra_seconds": round(extra, 1),
        "load_before": load_before,
        "load_after": [round(x, 2) for x in os.getloadavg()],
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "extras_at_scale.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# Outputs beyond the top-N lists at a large shape",
        "",
        f"`{result['command']}` on {result['date']} (load average before {load_before}, after "
        f"{result['load_after']}); {dataset.n_users:,} users x {dataset.n_items:,} movies, "
        f"{dataset.n_interactions:,} ratings (synthetic data: speed only).",
        "",
        "| step | seconds |",
        "|---|---:|",
        *(f"| {name} | {value:.1f} |" for name, value in seconds.items()),
        "",
        f"Similar movies: {similar_rows:,} rows (K = {settings.similar_k}, source {source}). Extra time per "
        f"run (similar movies, history, and the deeper selection's difference): **{extra:.0f} s**.",
        "",
    ]
    (RESULTS / "extras_at_scale.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
