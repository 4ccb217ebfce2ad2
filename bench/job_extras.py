"""What the job's extra outputs (candidates, similar movies, history, beyond-accuracy figures and drift) cost
on MovieLens 1M, against the whole nightly run (bench/results/nightly_run.json).

The published model is stood in for by a saved NeuMF (`--model-dir`, e.g. the default NeuMF fitted on the
training part); scoring cost does not depend on what it was trained on. Each round stages a run with the
job's own functions (`batch.job`), nothing is published:
- `lists`: scoring (`write_recommendations`) and the served arrays (`write_serving_arrays`) with
  `candidates` = top_n (no deeper list: what the job wrote before) and with the default `candidates`;
  the difference is the cost of the deeper list;
- `similar` (both sources), `history`, `beyond_accuracy` (+ drift against a published run): their own steps.
Rounds alternate the two depths (ABAB...) to share the machine's load between them.

    NCF_DATA_DIR=D python bench/job_extras.py --model-dir DIR [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from batch.beyond_accuracy import beyond_accuracy, drift
from batch.contract import HISTORY, MOVIES, RunWriter
from batch.job import PausePoint, movies_table, write_recommendations, write_similar_movies
from batch.serving_arrays import write_serving_arrays
from batch.settings import RunSettings
from batch.similar import history_table
from model.base import load_model
from model.data import DataLoader

RESULTS = Path(__file__).parent / "results"


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", type=Path, default=os.environ.get("NCF_DATA_DIR"))
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    dataset = DataLoader(args.data_dir).load()
    known = dataset.interactions().to_csr()
    model = load_model(args.model_dir)
    defaults = RunSettings(data_dir=args.data_dir)
    output = Path(tempfile.mkdtemp(prefix="job-extras-"))
    rows: dict[str, list[float]] = {}
    try:
        for round_ in range(args.rounds):
            depths = [defaults.top_n, defaults.depth] if round_ % 2 == 0 else [defaults.depth, defaults.top_n]
            for depth in depths:
                settings = RunSettings(data_dir=args.data_dir, output_dir=output, candidates=depth)
                writer = RunWriter(output)
                score, _ = timed(
                    lambda s=settings, w=writer: write_recommendations(
                        w, model, dataset, known, s, PausePoint()
                    )
                )
                writer.write_table(MOVIES, movies_table(dataset))
                serve, _ = timed(lambda w=writer: write_serving_arrays(w))
                rows.setdefault(f"score, candidates={depth}", []).append(score)
                rows.setdefault(f"served arrays, candidates={depth}", []).append(serve)
                if depth == defaults.depth:
                    for source in ("embedding", "cooccurrence"):
                        s = RunSettings(data_dir=args.data_dir, similar_source=source)
                        seconds, _ = timed(
                            lambda s=s, w=writer: write_similar_movies(
                                w, model, dataset.interactions(), dataset.item_ids, s
                            )
                        )
                        rows.setdefault(f"similar ({source})", []).append(seconds)
                    seconds, _ = timed(
                        lambda w=writer: w.write_table(HISTORY, history_table(dataset, defaults.history))
                    )
                    rows.setdefault("history", []).append(seconds)
                    seconds, _ = timed(
                        lambda w=writer: (
                            beyond_accuracy(
                                w.staging,
                                dataset.item_ids,
                                dataset.interactions().item_counts(),
                                dataset.n_users,
                                defaults.top_n,
                            ),
                            drift(w.staging, output),
                        )
                    )
                    rows.setdefault("beyond_accuracy + drift", []).append(seconds)
                    writer.publish(code_version="bench", top_n=defaults.top_n)  # the next round's drift
                else:
                    writer.abort()
    finally:
        shutil.rmtree(output, ignore_errors=True)
    median = {name: float(np.median(values)) for name, values in rows.items()}
    top_n, depth = defaults.top_n, defaults.depth
    extra = (
        median[f"score, candidates={depth}"]
        - median[f"score, candidates={top_n}"]
        + median[f"served arrays, candidates={depth}"]
        - median[f"served arrays, candidates={top_n}"]
        + median[f"similar ({defaults.similar_source})"]
        + median["history"]
        + median["beyond_accuracy + drift"]
    )
    nightly = json.loads((RESULTS / "nightly_run.json").read_text())
    wall = float(nightly["wall_s"])
    payload = {
        "command": f"NCF_DATA_DIR=D python bench/job_extras.py --model-dir DIR --rounds {args.rounds}",
        "model": json.loads((args.model_dir / "model.json").read_text())["class"],
        "machine": {
            "cpus": os.cpu_count(),
            "load_average": os.getloadavg(),
            "python": platform.python_version(),
        },
        "seconds": {name: [round(v, 3) for v in values] for name, values in rows.items()},
        "median_seconds": {name: round(v, 3) for name, v in median.items()},
        "extra_seconds": round(extra, 2),
        "nightly_wall_seconds": wall,
        "extra_share_of_nightly": round(extra / wall, 4),
    }
    (RESULTS / "job_extras.json").write_text(json.dumps(payload, indent=2) + "\n")
    lines = [
        "# The job's extra outputs on MovieLens 1M",
        "",
        f"Command: `{payload['command']}` (model: {payload['model']}); {os.cpu_count()} cores, load average "
        f"{', '.join(f'{x:.1f}' for x in payload['machine']['load_average'])} at the end.",
        "",
        "| step | median seconds | rounds |",
        "|---|---|---|",
        *(f"| {name} | {median[name]:.2f} | {', '.join(f'{v:.2f}' for v in rows[name])} |" for name in rows),
        "",
        f"Extra per run (deeper lists' scoring and served arrays, similar movies from the default source, "
        f"history, beyond-accuracy figures and drift): **{extra:.1f} s**, {100 * extra / wall:.1f}% of the "
        f"nightly run's {wall:.0f} s wall time ([nightly_run.json](nightly_run.json)).",
        "",
    ]
    (RESULTS / "job_extras.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
