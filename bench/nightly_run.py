"""Benchmark: the whole nightly job on ML-1M (`ncf-batch run`, default settings) under `/usr/bin/time -v`:
wall time, CPU time, peak resident memory, seconds per step and the test metrics it wrote.

    NCF_DATA_DIR=/work/shared/data/ml-1m .venv/bin/python bench/nightly_run.py [--output-dir /tmp/nightly]
        [-- extra run flags]

Writes bench/results/nightly_run.json and .md. The machine is shared: the load average before and after is
recorded, and the CPU time is the less load-dependent figure.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
REPO = Path(__file__).resolve().parents[1]


def parse_time_v(stderr: str) -> dict:
    def field(label: str) -> str:
        match = re.search(rf"{re.escape(label)}: (.+)", stderr)
        return match.group(1).strip() if match else ""

    clock = field("Elapsed (wall clock) time (h:mm:ss or m:ss)")
    parts = [float(p) for p in clock.split(":")] if clock else [0.0]
    wall = sum(p * 60**i for i, p in enumerate(reversed(parts)))
    return {
        "wall_s": round(wall, 1),
        "user_cpu_s": float(field("User time (seconds)") or 0),
        "system_cpu_s": float(field("System time (seconds)") or 0),
        "cpu_share": field("Percent of CPU this job got"),
        "peak_rss_mb": round(int(field("Maximum resident set size (kbytes)") or 0) / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", default=None, help="default: a fresh temporary directory")
    parser.add_argument("extra", nargs="*", help="further `ncf-batch run` flags (after --)")
    args = parser.parse_args()
    data_dir = os.environ.get("NCF_DATA_DIR")
    if not data_dir:
        sys.exit("set NCF_DATA_DIR to the ML-1M directory")
    output = Path(args.output_dir or tempfile.mkdtemp(prefix="nightly-"))
    command = [sys.executable, "-m", "batch", "run", "--data-dir", data_dir, "--output-dir", str(output)]
    command += args.extra
    load_before = os.getloadavg()
    proc = subprocess.run(
        ["/usr/bin/time", "-v", *command],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    if proc.returncode != 0:
        sys.exit(f"run failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    run_id = (output / "LATEST").read_text().strip()
    metrics = json.loads((output / "runs" / run_id / "metrics.json").read_text())
    manifest = json.loads((output / "runs" / run_id / "manifest.json").read_text())
    publish = re.search(r"step publish: done in ([\d.]+)s", proc.stderr)
    steps = {**metrics["step_seconds"], "publish": float(publish.group(1)) if publish else None}
    result = {
        "command": " ".join(
            ["NCF_DATA_DIR=" + data_dir, ".venv/bin/python bench/nightly_run.py", *args.extra]
        ),
        "job_command": " ".join(command[1:]),
        "note": "one run on a 2-core machine that other jobs may share (see the load averages)",
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        **parse_time_v(proc.stderr),
        "step_seconds": steps,
        "test": metrics["test"],
        "validation": metrics["validation"],
        "best_epoch": metrics["training"]["best_epoch"],
        "model_config": manifest["model_config"],
        "counts": manifest["counts"],
        "run_id": run_id,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "nightly_run.json").write_text(json.dumps(result, indent=2) + "\n")
    test = metrics["test"]
    lines = [
        "# Whole nightly run on ML-1M",
        "",
        f"`{result['command']}` — {result['note']}; load average before {result['load_average_before']}, "
        f"after {result['load_average_after']}.",
        "",
        f"- wall {result['wall_s']} s, CPU {result['user_cpu_s']} s user + {result['system_cpu_s']} s system "
        f"({result['cpu_share']} of one core), peak RSS {result['peak_rss_mb']} MB",
        "- steps (s): " + ", ".join(f"{k} {v}" for k, v in steps.items()),
        f"- best epoch {result['best_epoch']}; test HR@10 / NDCG@10: sampled "
        f"{test['sampled']['hr@10']:.4f} / {test['sampled']['ndcg@10']:.4f}, full "
        f"{test['full']['hr@10']:.4f} / {test['full']['ndcg@10']:.4f}",
        f"- rows written {result['counts']['rows']}",
    ]
    (RESULTS / "nightly_run.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
