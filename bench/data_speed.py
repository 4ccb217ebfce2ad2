"""Benchmark of the data layer on MovieLens 1M: parse time, split time, training negative sampler
(4 negatives per positive = ~4 M draws), and the ItemPop evaluation (sampled and full).

Usage: python bench/data_speed.py [--data-dir DIR] [--repeats 5]
Writes bench/results/data_speed.json and bench/results/data_speed.md (medians over the repeats).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

from model.baselines import ItemPop
from model.data import DataLoader, NegativeSampler, leave_one_out
from model.evaluation import Evaluator

RESULTS = Path(__file__).parent / "results"


def _median_seconds(fn, repeats: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", default=os.environ.get("NCF_DATA_DIR", "data/ml-1m"))
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    loader = DataLoader(args.data_dir)
    load_s, load_all = _median_seconds(loader.load, args.repeats)
    dataset = loader.load()
    split_s, split_all = _median_seconds(lambda: leave_one_out(dataset, seed=0), args.repeats)
    split = leave_one_out(dataset, seed=0)
    sampler = NegativeSampler(split.train, num_negatives=4, seed=0)
    epochs = iter(range(10_000))
    sample_s, sample_all = _median_seconds(lambda: sampler.epoch(next(epochs)), args.repeats)
    n_negatives = len(split.train) * 4
    model = ItemPop().fit(split.train)
    evaluator = Evaluator(split)
    sampled_s, _ = _median_seconds(lambda: evaluator.sampled_ranks(model, split.test), args.repeats)
    full_s, _ = _median_seconds(lambda: evaluator.full_ranks(model, split.test), args.repeats)
    metrics = evaluator.evaluate(model, "test")

    result = {
        "dataset": dataset.name,
        "n_interactions": dataset.n_interactions,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared and noisy while other jobs ran)",
        "repeats": args.repeats,
        "load_s_median": round(load_s, 3),
        "load_s_all": [round(t, 3) for t in load_all],
        "split_s_median": round(split_s, 3),
        "split_s_all": [round(t, 3) for t in split_all],
        "sampler_epoch_s_median": round(sample_s, 3),
        "sampler_epoch_s_all": [round(t, 3) for t in sample_all],
        "sampler_negatives_per_epoch": n_negatives,
        "sampler_negatives_per_s": round(n_negatives / sample_s),
        "itempop_eval_sampled_s_median": round(sampled_s, 4),
        "itempop_eval_full_s_median": round(full_s, 4),
        "itempop_test": metrics,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "data_speed.json").write_text(json.dumps(result, indent=2) + "\n")
    md = [
        "# Data layer speed (MovieLens 1M)",
        "",
        f"`python bench/data_speed.py --repeats {args.repeats}`; medians; {result['machine']}.",
        "",
        "| step | median |",
        "|---|---|",
        f"| parse + validate ML-1M (`DataLoader.load`) | {load_s:.2f} s |",
        f"| leave-one-out split + 2 x 6,040 x 99 candidate negatives | {split_s:.2f} s |",
        f"| training negatives, one epoch ({n_negatives:,} draws) | {sample_s:.3f} s "
        f"({n_negatives / sample_s / 1e6:.1f} M/s) |",
        f"| ItemPop evaluation, sampled (6,040 x 100) | {sampled_s:.3f} s |",
        f"| ItemPop evaluation, full ranking (6,040 x 3,706) | {full_s:.3f} s |",
        "",
        "ItemPop test: sampled HR@10 {:.4f} / NDCG@10 {:.4f}; full HR@10 {:.4f} / NDCG@10 {:.4f}.".format(
            metrics["sampled"]["hr@10"],
            metrics["sampled"]["ndcg@10"],
            metrics["full"]["hr@10"],
            metrics["full"]["ndcg@10"],
        ),
        "",
    ]
    (RESULTS / "data_speed.md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
