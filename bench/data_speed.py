"""Benchmark of the data layer: MovieLens 1M, and a synthetic MovieLens-shaped set at scale.

ML-1M (medians over the repeats): parse, leave-one-out split (with 2 x 99 candidate negatives per
user), one epoch of training negatives (4 per positive), ItemPop evaluation (sampled and full ranking).

Scale (one run each, in child processes so each reports its own peak RSS): write the synthetic set
(`model.data.synth`, default shape ml-20m), then load -> split -> negative sampler set-up -> one epoch of
negatives.

Usage: python bench/data_speed.py [--data-dir DIR] [--repeats 3] [--shape ml-20m] [--synth-dir DIR]
Writes bench/results/data_speed.json and bench/results/data_speed.md. Without --synth-dir the synthetic
set goes to a temporary directory that is removed afterwards.
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

RESULTS = Path(__file__).parent / "results"
ROOT = Path(__file__).resolve().parent.parent


def _median_seconds(fn, repeats: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def ml1m_section(data_dir: str, repeats: int) -> dict:
    from model.baselines import ItemPop
    from model.data import DataLoader, NegativeSampler, leave_one_out
    from model.evaluation import Evaluator

    loader = DataLoader(data_dir)
    load_s, load_all = _median_seconds(loader.load, repeats)
    dataset = loader.load()
    split_s, split_all = _median_seconds(lambda: leave_one_out(dataset, seed=0), repeats)
    split = leave_one_out(dataset, seed=0)
    sampler = NegativeSampler(split.train, num_negatives=4, seed=0)
    epochs = iter(range(10_000))
    sample_s, sample_all = _median_seconds(lambda: sampler.epoch(next(epochs)), repeats)
    n_negatives = len(split.train) * 4
    model = ItemPop().fit(split.train)
    evaluator = Evaluator(split)
    sampled_s, _ = _median_seconds(lambda: evaluator.sampled_ranks(model, split.test), repeats)
    full_s, _ = _median_seconds(lambda: evaluator.full_ranks(model, split.test), repeats)
    return {
        "dataset": dataset.name,
        "n_users": dataset.n_users,
        "n_items": dataset.n_items,
        "n_interactions": dataset.n_interactions,
        "repeats": repeats,
        "load_s_median": round(load_s, 3),
        "load_s_all": [round(t, 3) for t in load_all],
        "split_s_median": round(split_s, 3),
        "split_s_all": [round(t, 3) for t in split_all],
        "sampler_epoch_s_median": round(sample_s, 3),
        "sampler_epoch_s_all": [round(t, 3) for t in sample_all],
        "sampler_negatives_per_epoch": n_negatives,
        "itempop_eval_sampled_s_median": round(sampled_s, 4),
        "itempop_eval_full_s_median": round(full_s, 4),
        "itempop_test": evaluator.evaluate(model, "test"),
        "peak_rss_mb": round(_peak_rss_mb()),
    }


def generate_stage(shape: str, dest: str) -> dict:
    from model.data.synth import write_synthetic

    start = time.perf_counter()
    write_synthetic(shape, dest, seed=0)
    return {"generate_s": round(time.perf_counter() - start, 1), "peak_rss_mb": round(_peak_rss_mb())}


def pipeline_stage(data_dir: str) -> dict:
    from model.data import DataLoader, NegativeSampler, leave_one_out

    out: dict = {}
    start = time.perf_counter()
    dataset = DataLoader(data_dir).load()
    out["load_s"] = round(time.perf_counter() - start, 1)
    out["load_peak_rss_mb"] = round(_peak_rss_mb())
    start = time.perf_counter()
    split = leave_one_out(dataset, seed=0)
    out["split_s"] = round(time.perf_counter() - start, 1)
    start = time.perf_counter()
    sampler = NegativeSampler(split.train, num_negatives=4, seed=0)
    out["sampler_init_s"] = round(time.perf_counter() - start, 1)
    start = time.perf_counter()
    users, _, labels = sampler.epoch(0)
    out["epoch_s"] = round(time.perf_counter() - start, 1)
    out["negatives_per_epoch"] = int(users.shape[0] - labels.sum())
    out.update(n_users=dataset.n_users, n_items=dataset.n_items, n_interactions=dataset.n_interactions)
    out["peak_rss_mb"] = round(_peak_rss_mb())
    return out


def _child(*args: str) -> dict:
    """Run this script's stage in a fresh process; its last stdout line is the stage's JSON."""
    proc = subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, check=True, cwd=ROOT
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def scale_section(shape: str, synth_dir: str | None) -> dict:
    with tempfile.TemporaryDirectory(prefix="synth-") as tmp:
        dest = synth_dir or str(Path(tmp) / shape)
        generate = _child("--stage", "generate", "--shape", shape, "--synth-dir", dest)
        pipeline = _child("--stage", "pipeline", "--synth-dir", dest)
    return {"shape": shape, "generate": generate, "pipeline": pipeline}


def _row(*cells: str) -> str:
    return "| " + " | ".join(cells) + " |"


def _markdown(result: dict) -> str:
    m, s = result["ml1m"], result["scale"]
    g, p = s["generate"], s["pipeline"]
    test = m["itempop_test"]
    users, big_users = f"{m['n_users']:,}", f"{p['n_users']:,}"
    return "\n".join(
        [
            "# Data layer speed",
            "",
            f"`{result['command']}`; {result['machine']}.",
            "",
            f"## MovieLens 1M (medians of {m['repeats']}; process peak RSS {m['peak_rss_mb']:,} MB)",
            "",
            _row("step", "median"),
            _row("---", "---"),
            _row("parse + validate ML-1M (`DataLoader.load`)", f"{m['load_s_median']:.2f} s"),
            _row(
                f"leave-one-out split + 2 x {users} x 99 candidate negatives", f"{m['split_s_median']:.2f} s"
            ),
            _row(
                f"training negatives, one epoch ({m['sampler_negatives_per_epoch']:,} draws)",
                f"{m['sampler_epoch_s_median']:.3f} s",
            ),
            _row(
                f"ItemPop evaluation, sampled ({users} x 100)", f"{m['itempop_eval_sampled_s_median']:.3f} s"
            ),
            _row(
                f"ItemPop evaluation, full ranking ({users} x {m['n_items']:,})",
                f"{m['itempop_eval_full_s_median']:.3f} s",
            ),
            "",
            "ItemPop test: sampled HR@10 {:.4f} / NDCG@10 {:.4f}; full HR@10 {:.4f} / NDCG@10 {:.4f}.".format(
                test["sampled"]["hr@10"],
                test["sampled"]["ndcg@10"],
                test["full"]["hr@10"],
                test["full"]["ndcg@10"],
            ),
            "",
            f"## Synthetic {s['shape']} shape ({p['n_interactions']:,} ratings, {big_users} users, "
            f"{p['n_items']:,} movies; one run)",
            "",
            _row("step", "time", "peak RSS of the process"),
            _row("---", "---", "---"),
            _row(
                "write the synthetic CSVs (`model.data.synth`)",
                f"{g['generate_s']:.1f} s",
                f"{g['peak_rss_mb']:,} MB",
            ),
            _row(
                "parse + validate (`DataLoader.load`)",
                f"{p['load_s']:.1f} s",
                f"{p['load_peak_rss_mb']:,} MB",
            ),
            _row(
                f"leave-one-out split + 2 x {big_users} x 99 candidate negatives", f"{p['split_s']:.1f} s", ""
            ),
            _row(
                "negative sampler set-up (keys + filter of the training pairs)",
                f"{p['sampler_init_s']:.1f} s",
                "",
            ),
            _row(
                f"training negatives, one epoch ({p['negatives_per_epoch']:,} draws)",
                f"{p['epoch_s']:.1f} s",
                f"{p['peak_rss_mb']:,} MB (load to epoch)",
            ),
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", default=os.environ.get("NCF_DATA_DIR", "data/ml-1m"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--shape", default="ml-20m")
    parser.add_argument(
        "--synth-dir", help="where to write the synthetic set (kept); default: a temporary one"
    )
    parser.add_argument("--stage", choices=["generate", "pipeline"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))  # this checkout's `model`, whatever the environment has installed
    if args.stage == "generate":
        print(json.dumps(generate_stage(args.shape, args.synth_dir)))
        return
    if args.stage == "pipeline":
        print(json.dumps(pipeline_stage(args.synth_dir)))
        return

    result = {
        "command": f"python bench/data_speed.py --repeats {args.repeats} --shape {args.shape}",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared and noisy while other jobs ran)",
        "ml1m": ml1m_section(args.data_dir, args.repeats),
        "scale": scale_section(args.shape, args.synth_dir),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "data_speed.json").write_text(json.dumps(result, indent=2) + "\n")
    md = _markdown(result)
    (RESULTS / "data_speed.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
