"""The NumPy engine at another git revision vs the working tree, interleaved in one process, on ML-1M.

Both engines train NeuMF with the comparison config (factors 8, layers 64-32-16-8, Adam lr 0.002, batch
4096) on the same shuffled ML-1M training epoch (4 negatives, seed 0): each repeat runs `--steps` batches
through `train_epoch` with engine A and the same batches with engine B, so both see the same load, in
ABBA order (whichever ran second was ~3-15% slower with identical code). Reported per engine (medians
over repeats): wall ms per step, CPU ms per step (this process and its finished children, i.e. the
working tree's helper process), minor page faults per step; and the median over repeats of B / A per
repeat (paired: less sensitive to the load drifting between repeats). `--out` writes elsewhere. The revision's
`model/ncf/numpy_*.py` are read with `git show` into a temporary package. `--processes` sets the engines'
`threads` (the revision's threads, the working tree's processes); their per-epoch probes are off.
`--only a|b` runs one engine alone (in one process the engines share the heap, and the working tree's
reused buffers also spare the revision the page faults it has on its own).

    .venv/bin/python bench/numpy_engine_ab.py --data-dir /work/shared/data/ml-1m --base e26ae5f
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
MODULES = (
    "numpy_engine",
    "numpy_kernels",
    "numpy_network",
    "numpy_optimizers",
    "numpy_parallel",
    "numpy_sparse",
    "numpy_worker",
)


def engine_at(revision: str, into: Path) -> type:
    """`NumpyNCF` as of `revision`, imported from a copy of its modules in package `base_ncf`."""
    package = into / "base_ncf"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for module in MODULES:
        shown = subprocess.run(
            ["git", "show", f"{revision}:model/ncf/{module}.py"], cwd=ROOT, capture_output=True, text=True
        )
        if shown.returncode == 0:  # some modules are newer than some revisions
            source = re.sub(r"from model\.ncf\.(numpy_\w+) import", r"from base_ncf.\1 import", shown.stdout)
            (package / f"{module}.py").write_text(source)
    sys.path.insert(0, str(into))
    return importlib.import_module("base_ncf.numpy_engine").NumpyNCF


def cpu_seconds() -> float:
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("NCF_DATA_DIR", "data/ml-1m"))
    parser.add_argument("--base", default="e26ae5f", help="git revision of engine A")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--only", choices=("a", "b"), help="run one engine alone")
    parser.add_argument("--out", help="results path stem (default: numpy_engine_ab_<processes>p...)")
    args = parser.parse_args()

    from model.data import DataLoader, leave_one_out
    from model.data.sampling import NegativeSampler
    from model.ncf.config import NCFConfig, TrainConfig
    from model.ncf.numpy_engine import NumpyNCF
    from model.ncf.params import init_params

    split = leave_one_out(DataLoader(args.data_dir).load(), seed=0)
    users, items, labels = NegativeSampler(split.train, 4, seed=0).epoch(0)
    order = np.random.default_rng(0).permutation(labels.shape[0])
    users, items, labels = users[order], items[order], labels[order]
    n_users, n_items, batch = split.train.n_users, split.train.n_items, 4096
    config = NCFConfig(kind="neumf", factors=8, layers=(64, 32, 16, 8))
    with tempfile.TemporaryDirectory() as tmp:
        engines = {f"A: {args.base}": engine_at(args.base, Path(tmp)), "B: working tree": NumpyNCF}
        if args.only:
            engines = dict([list(engines.items())["ab".index(args.only)]])
        models = {}
        for name, engine in engines.items():
            model = engine(config, TrainConfig(learning_rate=0.002, batch_size=batch))
            model.build(n_users, n_items, init_params(config, n_users, n_items, seed=0))
            model.processes, model.probe_steps = args.processes, 0
            models[name] = model
        runs: dict[str, list[tuple[float, float, float]]] = {name: [] for name in models}
        load_before = os.getloadavg()[0]
        span = args.steps * batch
        for repeat in range(args.repeats):
            first = repeat * span % (labels.shape[0] - span)
            part = slice(first, first + span)
            # ABBA order: whichever runs second in a repeat was measured ~3-15% slower with identical code
            for name, model in list(models.items())[:: -1 if repeat % 2 else 1]:
                faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
                start, cpu = time.perf_counter(), cpu_seconds()
                model.train_epoch(users[part], items[part], labels[part], batch)
                wall, cpu = time.perf_counter() - start, cpu_seconds() - cpu
                faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
                runs[name].append((wall * 1e3 / args.steps, cpu * 1e3 / args.steps, faults / args.steps))
    names = list(runs)
    ratios = {}
    if len(names) == 2:  # paired per repeat: less sensitive to load drift than the ratio of medians
        for key, column in (("wall", 0), ("CPU", 1)):
            pairs = [b[column] / a[column] for a, b in zip(runs[names[0]], runs[names[1]], strict=True)]
            ratios[f"B / A {key} per step (median of paired repeats)"] = round(float(np.median(pairs)), 3)
    report = {
        "command": "python bench/numpy_engine_ab.py " + " ".join(sys.argv[1:]),
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "note": f"medians of {args.repeats} interleaved repeats of {args.steps} batches of {batch}; "
        f"{args.processes} process(es)/thread(s) per engine; shared, noisy 2-core machine",
        "load_average_1min": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)},
        "engines": {
            name: {
                "wall ms per step": round(float(np.median([r[0] for r in rows])), 3),
                "CPU ms per step": round(float(np.median([r[1] for r in rows])), 3),
                "minor page faults per step": round(float(np.median([r[2] for r in rows])), 1),
            }
            for name, rows in runs.items()
        },
        "ratios": ratios,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = args.out or f"numpy_engine_ab_{args.processes}p" + (f"_{args.only}_alone" if args.only else "")
    (RESULTS / f"{stem}.json").write_text(json.dumps(report, indent=2))
    lines = [
        "# NumPy engine: a git revision vs the working tree, interleaved",
        "",
        f"Command: `{report['command']}` ({report['date_utc']} UTC). {report['note']}. "
        f"Load average (1 min) {load_before:.2f} before, {report['load_average_1min']['after']:.2f} after.",
        "",
        "| engine | wall ms per step | CPU ms per step | minor page faults per step |",
        "|---|---|---|---|",
    ]
    for name, values in report["engines"].items():
        lines.append(f"| {name} | " + " | ".join(f"{v:,}" for v in values.values()) + " |")
    lines += ["", *(f"{name}: {value}" for name, value in ratios.items())]
    (RESULTS / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
