"""Benchmark: Keras training on 2 local workers (`MultiWorkerMirroredStrategy`) against one worker, ML-1M.

Trains the same short configuration (GMF, 64 factors, a few epochs, the same global mini-batch) on the
project's leave-one-out split of ML-1M (`model.data.leave_one_out`, split seed 0, 99 sampled negatives per
held-out item) three ways, each in its own process:

- single: one worker, no `$TF_CONFIG` (seed 0);
- single_seed1: one worker with training seed 1, the seed-to-seed spread that "within noise" is judged
  against;
- two_workers: two processes on localhost ports (`$TF_CONFIG`, `cluster.worker` = both, task index 0 and
  1), seed 0; each steps on its half of every global mini-batch and the gradients are all-reduced (see
  `model.ncf.keras_engine`); the trailing partial batch of an epoch is skipped there.

Every run then evaluates its model on the validation items with the project's evaluator
(`model.evaluation.Evaluator`, sampled protocol, HR@10 and NDCG@10). Both workers of the two-worker run
evaluate, and should agree exactly (their weights are kept equal). The report gives the differences and the
binomial standard error of HR@10 over the users, sqrt(p (1 - p) / users).

    NCF_DATA_DIR=/path/to/ml-1m .venv/bin/python bench/multiworker.py [--epochs 3]

Writes bench/results/multiworker.{json,md}. Wall times are on a shared machine and only indicative: the
two workers share the same cores.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

from batch.cluster import local_worker_envs

RESULTS = Path(__file__).parent / "results"
REPO = Path(__file__).resolve().parents[1]


def worker(args: argparse.Namespace) -> None:
    """One training process: fit, evaluate on validation (sampled), write a JSON result."""
    from model.data import DataLoader, leave_one_out
    from model.evaluation import Evaluator
    from model.registry import build_model

    dataset = DataLoader(Path(os.environ["NCF_DATA_DIR"])).load()
    split = leave_one_out(dataset, seed=0, n_negatives=99)
    train_config = {
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "num_negatives": args.negatives,
        "learning_rate": args.learning_rate,
        "seed": args.seed,
    }
    model = build_model("gmf", engine="keras", config={"factors": args.factors}, train_config=train_config)
    start = time.perf_counter()
    model.fit(split.train)
    seconds = time.perf_counter() - start
    figures = Evaluator(split, k=10, protocols=("sampled",)).evaluate(model, "validation")["sampled"]
    result = {
        "hr@10": figures["hr@10"],
        "ndcg@10": figures["ndcg@10"],
        "train_s": round(seconds, 1),
        "users": int(split.held_out("validation").user_idx.shape[0]),
        "losses": [round(float(h.get("loss", float("nan"))), 5) for h in getattr(model, "history_", [])],
        "train_config": train_config,
    }
    Path(args.out).write_text(json.dumps(result))


def launch(args: argparse.Namespace, name: str, n_workers: int, seed: int, tmp: Path) -> list[dict]:
    """Run `n_workers` worker processes of one training (a cluster when > 1) and read their results."""
    procs = []
    for rank, worker_env in enumerate(local_worker_envs(n_workers, {**os.environ, "PYTHONPATH": str(REPO)})):
        out = tmp / f"{name}-{rank}.json"
        command = [sys.executable, __file__, "--role", "worker", "--out", str(out), "--seed", str(seed)]
        command += [f"--{k}={v}" for k, v in common(args).items()]
        procs.append((subprocess.Popen(command, env=worker_env), out))
    for proc, _ in procs:
        if proc.wait() != 0:
            raise RuntimeError(f"{name}: a worker exited with {proc.returncode}")
    return [json.loads(out.read_text()) for _, out in procs]


def common(args: argparse.Namespace) -> dict:
    return {
        "epochs": args.epochs,
        "batch-size": args.batch_size,
        "negatives": args.negatives,
        "learning-rate": args.learning_rate,
        "factors": args.factors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--role", choices=["main", "worker"], default="main")
    parser.add_argument("--out")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=4096, help="the global mini-batch")
    parser.add_argument("--negatives", type=int, default=4)
    parser.add_argument("--learning-rate", type=float, default=0.002)
    parser.add_argument("--factors", type=int, default=64)
    args = parser.parse_args()
    if args.role == "worker":
        worker(args)
        return
    import tempfile

    tmp = Path(tempfile.mkdtemp(prefix="multiworker-"))
    load_start = [round(x, 2) for x in os.getloadavg()]
    runs = {
        "single": launch(args, "single", 1, 0, tmp),
        "single_seed1": launch(args, "single_seed1", 1, 1, tmp),
        "two_workers": launch(args, "two_workers", 2, 0, tmp),
    }
    single, other, chief = runs["single"][0], runs["single_seed1"][0], runs["two_workers"][0]
    p, users = single["hr@10"], single["users"]
    result = {
        "command": " ".join(["NCF_DATA_DIR=" + os.environ["NCF_DATA_DIR"], ".venv/bin/python", *sys.argv]),
        "config": {"model": "gmf", "engine": "keras", "factors": args.factors, **common(args)},
        "load_average_start": load_start,
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
        "runs": runs,
        "workers_agree": runs["two_workers"][0]["hr@10"] == runs["two_workers"][1]["hr@10"]
        and runs["two_workers"][0]["ndcg@10"] == runs["two_workers"][1]["ndcg@10"],
        "hr@10_two_workers_minus_single": round(chief["hr@10"] - p, 5),
        "hr@10_seed1_minus_single": round(other["hr@10"] - p, 5),
        "ndcg@10_two_workers_minus_single": round(chief["ndcg@10"] - single["ndcg@10"], 5),
        "ndcg@10_seed1_minus_single": round(other["ndcg@10"] - single["ndcg@10"], 5),
        "hr@10_binomial_se": round(math.sqrt(p * (1 - p) / users), 5),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "multiworker.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# Keras training: two local workers (MultiWorkerMirroredStrategy) vs one worker, ML-1M",
        "",
        f"`{result['command']}`: GMF, {args.factors} factors, {args.epochs} epochs, global mini-batch "
        f"{args.batch_size}, {args.negatives} negatives per positive, Adam at {args.learning_rate}; "
        "leave-one-out split (seed 0), validation items, sampled protocol (99 negatives). Load average "
        f"{load_start} at the start, {result['load_average_end']} at the end (shared machine; wall "
        "times only indicative, the two workers share the same cores).",
        "",
        "| run | HR@10 | NDCG@10 | train (s) | losses by epoch |",
        "|---|---:|---:|---:|---|",
    ]
    for name, results in runs.items():
        for rank, r in enumerate(results):
            label = f"{name} (task {rank})" if len(results) > 1 else name
            lines.append(
                f"| {label} | {r['hr@10']:.4f} | {r['ndcg@10']:.4f} | {r['train_s']} | {r['losses']} |"
            )
    lines += [
        "",
        f"Two workers - single, HR@10: {result['hr@10_two_workers_minus_single']:+.4f} "
        f"(NDCG@10 {result['ndcg@10_two_workers_minus_single']:+.4f}); seed 1 - seed 0 on one worker: "
        f"{result['hr@10_seed1_minus_single']:+.4f} (NDCG@10 {result['ndcg@10_seed1_minus_single']:+.4f}); "
        f"binomial standard error of HR@10 over {users:,} users: {result['hr@10_binomial_se']:.4f}. "
        f"The two workers' own figures {'agree exactly' if result['workers_agree'] else 'DIFFER'}.",
    ]
    (RESULTS / "multiworker.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
