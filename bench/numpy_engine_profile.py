"""Where a NumPy-engine training step spends its time, and what the alternatives for the hot spots cost.

Measures CPU time (`time.process_time`, single-threaded BLAS) on ML-1M-sized tables (6040 users, 3706
items), NeuMF (factors 8, layers 64-32-16-8), Adam, on batches of a shuffled ML-1M training epoch (4
negatives, seed 0) with `--data-dir`, else on uniform random batches (more distinct rows per batch):
- a breakdown of one single-process `train_step` into gather, forward, loss, backward, row sums, dense
  and row updates (per half batch / per side, as the engine runs them), and the whole step with the batch
  cut into 1, 2 and 4 parts;
- the critical path of a step in two processes, from per-task thread CPU time (load-insensitive);
- row-gradient aggregation: `np.add.at`, sorted `np.add.reduceat`, and the engine's sparse-matrix sum;
- the sort inside it: stable argsort of int32 vs 16-bit keys (radix sort);
- the step helper process: round-trip time of a request;
- step processes: wall-clock samples/s of `train_epoch` alone vs with its helper process (interleaved
  repeats, medians), CPU of both processes, page faults per step, with the load average;
- OpenBLAS threads: a training epoch slice with the default thread count vs one thread (wall clock).
Writes `bench/results/numpy_engine_profile.json` and `.md` (`numpy_engine_profile_ml1m.*` with
`--data-dir`). CPU time is less sensitive than wall time to the other jobs on a shared machine, but still
noisy; medians of repeats are reported. Wall-clock speed-ups from the helper process need a second free
core: on a loaded machine they shrink or vanish.

    .venv/bin/python bench/numpy_engine_profile.py --data-dir /work/shared/data/ml-1m
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from model.ncf.config import NCFConfig, TrainConfig
from model.ncf.numpy_engine import NumpyNCF
from model.ncf.numpy_kernels import take_rows
from model.ncf.numpy_network import Rows, backward, forward, log_loss_with_logits
from model.ncf.numpy_parallel import StepRunner
from model.ncf.numpy_sparse import row_selector, sum_rows
from model.ncf.numpy_worker import StepHelper
from model.ncf.params import init_params

RESULTS = Path(__file__).resolve().parent / "results"
N_USERS, N_ITEMS, BATCH = 6040, 3706, 4096
# bench/compare_engines.py's NeuMF (until 2026-11-27 14:20 this script profiled NCFConfig()'s defaults,
# 64 factors and layers 128-64-32, by mistake)
COMPARISON_CONFIG = {"factors": 8, "layers": (64, 32, 16, 8)}


def examples(n: int, seed: int, data_dir: str | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(users, items, labels) of n training examples: the start of a shuffled ML-1M epoch from `data_dir`
    (cached per process), else uniform random with 20% positives."""
    if data_dir is None:
        rng = np.random.default_rng(seed)
        users = rng.integers(0, N_USERS, n).astype(np.int32)
        return users, rng.integers(0, N_ITEMS, n).astype(np.int32), (rng.random(n) < 0.2).astype(np.float32)
    if data_dir not in _EPOCHS:
        from model.data import DataLoader, leave_one_out
        from model.data.sampling import NegativeSampler

        split = leave_one_out(DataLoader(data_dir).load(), seed=0)
        assert (split.train.n_users, split.train.n_items) == (N_USERS, N_ITEMS)
        epoch = NegativeSampler(split.train, 4, seed=0).epoch(0)
        order = np.random.default_rng(0).permutation(epoch[2].shape[0])
        _EPOCHS[data_dir] = tuple(array[order] for array in epoch)
    first = seed * n  # different seeds: different stretches of the epoch
    return tuple(array[first : first + n] for array in _EPOCHS[data_dir])  # type: ignore[return-value]


_EPOCHS: dict[str, tuple[np.ndarray, ...]] = {}


def cpu_us(fn, repeats: int = 5, calls: int = 40) -> float:
    """Median over `repeats` of the mean CPU microseconds of `calls` calls."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.process_time()
        for _ in range(calls):
            fn()
        times.append((time.process_time() - start) / calls * 1e6)
    return round(float(np.median(times)), 1)


def step_breakdown(model: NumpyNCF, users, items, labels, data_dir: str | None) -> dict[str, float]:
    """CPU us of the pieces of a step, each on what the engine gives it (the same batch every call): half
    a batch for the passes, one side (B slices) for the row sums and the Adam row update; and whole steps
    on 40 successive batches, with the batch cut into 1, 2 and 4 parts."""
    config, half = model.config, BATCH // 2
    u, i, y = users[:half], items[:half], labels[:half]
    table, f = model._table, config.factors
    width = table.shape[1]
    pairs = np.stack([u, i + N_USERS], axis=1).astype(np.intp)

    def gather() -> Rows:
        block = take_rows(table, pairs)  # as the engine: item rows are [MLP | GMF]
        users, items = block[:, :width], block[:, width:]
        mlp = width - f
        return Rows(users[:, :f], items[:, mlp:], users[:, f:], items[:, :mlp], block[:, f : f + 2 * mlp])

    inputs = gather()
    logits, cache = forward(config, model._dense, inputs)
    _, dlogits = log_loss_with_logits(logits, y, BATCH)
    out_user, out_item = np.empty((half, width), np.float32), np.empty((half, width), np.float32)
    out = Rows(out_user[:, :f], out_item[:, width - f :], out_user[:, f:], out_item[:, : width - f])
    model._backprop(users, items, labels)
    arrays = model._step_arrays(BATCH)
    slices, squares, dense_parts, zeros = arrays.slices, arrays.squares, arrays.dense, arrays.zeros
    user_slices, user_squares = slices[:BATCH], squares[:BATCH]
    dense_grad = dense_parts[0].copy()
    rows, selector = row_selector(users)
    opt = model._optimizer
    opt.step()

    def row_sums():
        return selector @ user_slices, selector @ np.square(user_slices, out=user_squares)

    def adam_rows():
        opt.update_rows(model._rows, rows, selector, user_slices, user_squares)

    stream = examples(40 * BATCH, 3, data_dir)
    calls = iter(range(10**9))

    def with_parts(parts: int):
        def step():
            model.parts = parts
            first = next(calls) % 40 * BATCH
            model.train_step(*(array[first : first + BATCH] for array in stream))

        return step

    result = {
        "gather rows (half batch, both sides, one take of pairs)": cpu_us(gather),
        "forward (half batch)": cpu_us(lambda: forward(config, model._dense, inputs, zeros=zeros)),
        "log loss (half batch)": cpu_us(lambda: log_loss_with_logits(logits, y, BATCH)),
        "backward (half batch)": cpu_us(lambda: backward(config, model._dense, cache, dlogits.copy(), out)),
        "row selector (one side: sort, CSR)": cpu_us(lambda: row_selector(users)),
        "squares and row sums of gradients and squares (one side; as a separate product)": cpu_us(row_sums),
        "Adam, dense layers": cpu_us(lambda: opt.update("dense", model._dense_flat, dense_grad.copy())),
        "Adam, touched embedding rows (one side; row sums added into the moments)": cpu_us(adam_rows),
    }
    for parts in (1, 2, 4):
        result[f"whole train_step, 1 process, batch in {parts} part(s), successive batches"] = cpu_us(
            with_parts(parts)
        )
    model.parts = NumpyNCF.parts
    return result


def cpu_seconds() -> float:
    """CPU seconds of this process and of its finished children (the engine's step helpers)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def step_processes(model: NumpyNCF, data_dir: str | None) -> dict[str, float]:
    """Wall-clock samples/s of `train_epoch` (120 batches: the helper's fork, ~5 ms, and stop, ~3 ms, are
    paid once per epoch, ~1200 batches on ML-1M) in 1 process and with a helper process (2),
    interleaved, median of 5 each; CPU ms per step of both processes, and minor page faults per step."""
    steps = 120
    n = steps * BATCH
    u, i, y = examples(n, 1, data_dir)
    runs: dict[int, list[tuple[float, float, float]]] = {1: [], 2: []}
    model.probe_steps = 0  # no probing: every step as set
    for _ in range(5):
        for threads in runs:
            model.processes = threads
            faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            start, cpu = time.perf_counter(), cpu_seconds()
            model.train_epoch(u, i, y, BATCH)
            wall, cpu = time.perf_counter() - start, cpu_seconds() - cpu
            runs[threads].append((wall, cpu, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults))
    model.processes, model.probe_steps = NumpyNCF.processes, NumpyNCF.probe_steps
    result: dict[str, float] = {"load average (1 min) before": round(os.getloadavg()[0], 2)}
    for threads, times in runs.items():
        wall, cpu, faults = (float(np.median(col)) for col in zip(*times, strict=True))
        result[f"{threads} process(es): samples/s (wall)"] = round(n / wall)
        result[f"{threads} process(es): wall ms per step"] = round(wall / steps * 1e3, 2)
        result[f"{threads} process(es): CPU ms per step (both processes)"] = round(cpu / steps * 1e3, 2)
        result[f"{threads} process(es): minor page faults per step (engine process)"] = round(
            faults / steps, 1
        )
    return result


def helper_round_trip() -> dict[str, float]:
    """Microseconds for a request to a `StepHelper` and its answer (median of 2000), with no arguments
    and with the arguments of a half-batch part (three arrays of 2048)."""

    class Echo:
        def echo(self, *args):
            return 0.0

    helper = StepHelper(Echo())
    half = np.arange(BATCH // 2, dtype=np.int32)
    result = {}
    try:
        for label, args in (
            ("no arguments", ()),
            ("3 arrays of 2048", (half, half, half.astype(np.float32))),
        ):
            times = []
            for _ in range(2000):
                start = time.perf_counter()
                helper.submit("echo", args)
                helper.result()
                times.append(time.perf_counter() - start)
            result[f"round trip, {label} (wall us)"] = round(float(np.median(times)) * 1e6, 1)
    finally:
        helper.close()
    return result


class _TaskTimer(StepRunner):
    """Runs the engine's parallel tasks one after the other, each timed in thread CPU; the work the engine
    runs itself while a helper would start (`first`) counts with the first task, as in the engine."""

    task_cpu: list[float]
    phase_max: list[float]

    def run(self, tasks, first=None):
        results, times = [], []
        for k, (name, args) in enumerate(tasks):
            start = time.thread_time()
            if k == 0 and first:
                getattr(self._target, first[0])(*first[1])
            results.append(getattr(self._target, name)(*args))
            times.append(time.thread_time() - start)
        self.task_cpu += times
        self.phase_max.append(max(times))
        return results


def critical_path(params, data_dir: str | None) -> dict[str, float]:
    """How much of a step can run in two processes, from thread CPU time (insensitive to other jobs'
    load): CPU ms per step in the parallel tasks (halves, sides) and outside them, and the critical path
    with two processes (serial part + the longer task of each phase), ignoring the helper's round trips;
    median of 5 epochs of 30 batches."""
    n = 30 * BATCH
    u, i, y = examples(n, 2, data_dir)
    model = NumpyNCF(NCFConfig(**COMPARISON_CONFIG), TrainConfig(batch_size=BATCH))
    model.build(N_USERS, N_ITEMS, params)
    model._runner = timer = _TaskTimer(model)
    rows = []
    for _ in range(5):
        timer.task_cpu, timer.phase_max = [], []
        start = time.thread_time()
        for first in range(0, n, BATCH):
            model.train_step(u[first : first + BATCH], i[first : first + BATCH], y[first : first + BATCH])
        total = time.thread_time() - start
        rows.append((total, sum(timer.task_cpu), total - sum(timer.task_cpu) + sum(timer.phase_max)))
    total, tasks, path = (float(np.median(col)) * 1e3 / 30 for col in zip(*rows, strict=True))
    return {
        "CPU ms per step, all": round(total, 2),
        "CPU ms per step in parallel tasks": round(tasks, 2),
        "CPU ms per step outside them": round(total - tasks, 2),
        "critical path ms per step in 2 processes (no round trips)": round(path, 2),
        "ideal 2-process speed-up": round(total / path, 2),
    }


def aggregation(indices: np.ndarray, grads: np.ndarray) -> dict[str, float]:
    n_rows = N_USERS + N_ITEMS

    def add_at():
        out = np.zeros((n_rows, grads.shape[1]), grads.dtype)
        np.add.at(out, indices, grads)

    def reduceat():
        order = np.argsort(indices, kind="stable")
        s = indices[order]
        starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
        np.add.reduceat(grads[order], starts, axis=0)

    def csr_unsorted():
        _, inverse = np.unique(indices, return_inverse=True)
        m = sp.csr_matrix((np.ones(len(indices), grads.dtype), (inverse, np.arange(len(indices)))))
        return m @ grads

    keys32, keys16 = indices.astype(np.int32), indices.astype(np.uint16)
    return {
        "np.add.at into a zero table": cpu_us(add_at),
        "argsort + np.add.reduceat": cpu_us(reduceat),
        "np.unique + COO->CSR product": cpu_us(csr_unsorted),
        "engine sum_rows (radix sort + CSR product)": cpu_us(lambda: sum_rows(indices, grads)),
        "stable argsort, int32 keys": cpu_us(lambda: np.argsort(keys32, kind="stable")),
        "stable argsort, uint16 keys (radix)": cpu_us(lambda: np.argsort(keys16, kind="stable")),
    }


def blas_threads(model: NumpyNCF, users, items, labels) -> dict[str, float]:
    """Wall-clock samples/s of 30 steps with the default BLAS threads and with one thread."""

    def run() -> float:
        start = time.perf_counter()
        for _ in range(30):
            model.train_step(users, items, labels)
        return round(30 * BATCH / (time.perf_counter() - start))

    default = run()  # train_step outside train_epoch: no thread limit
    with threadpool_limits(limits=1, user_api="blas"):
        single = run()
    return {"default BLAS threads, samples/s (wall)": default, "1 BLAS thread, samples/s (wall)": single}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("NCF_DATA_DIR"), help="ML-1M; random without")
    data_dir = parser.parse_args().data_dir
    rng = np.random.default_rng(0)
    users, items, labels = examples(BATCH, 0, data_dir)
    config = NCFConfig(**COMPARISON_CONFIG)
    model = NumpyNCF(config, TrainConfig(batch_size=BATCH))
    params = init_params(config, N_USERS, N_ITEMS, seed=0)
    model.build(N_USERS, N_ITEMS, params)
    indices = np.concatenate([users, items + N_USERS])
    grads = rng.normal(size=(2 * BATCH, 80)).astype(np.float32)
    with threadpool_limits(limits=1, user_api="blas"):
        report = {
            "command": "python bench/numpy_engine_profile.py " + " ".join(sys.argv[1:]),
            "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
            "note": "CPU microseconds per call, median of 5 repeats; shared, noisy 2-core machine; batches: "
            + ("shuffled ML-1M epoch" if data_dir else "uniform random"),
            "batch": BATCH,
            "train_step_breakdown_cpu_us": step_breakdown(model, users, items, labels, data_dir),
            "critical_path": critical_path(params, data_dir),
            "row_sum_alternatives_cpu_us (2B = 8192 slices x 80 columns)": aggregation(indices, grads),
        }
    report["helper_process"] = helper_round_trip()
    report["step_processes"] = step_processes(model, data_dir)
    report["blas_threads"] = blas_threads(model, users, items, labels)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = "numpy_engine_profile_ml1m" if data_dir else "numpy_engine_profile"
    (RESULTS / f"{stem}.json").write_text(json.dumps(report, indent=2))
    lines = [
        "# NumPy engine: where a training step's time goes",
        "",
        f"Command: `{report['command']}` ({report['date_utc']} UTC). {report['note']}.",
        "",
    ]
    for section, values in report.items():
        if isinstance(values, dict):
            lines += [f"## {section}", "", "| part | value |", "|---|---|"]
            lines += [f"| {k} | {v:,} |" for k, v in values.items()] + [""]
    (RESULTS / f"{stem}.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
