"""Benchmark: the nightly job (`ncf-batch run`) on MovieLens-shaped data of growing size, to show how its
time and memory grow.

    .venv/bin/python bench/scale.py --shapes ml-1m ml-10m --real ml-1m=/work/shared/data/ml-1m \
        [--work /tmp/ncf-scale] [--name scale] [--append] [-- extra run flags, e.g. --model gmf --epochs 1]

Each synthetic shape is generated once (`model.data.synth`, the real set's numbers of users, movies and
ratings; for scale and speed only, never for accuracy) into --work; each data set then runs the job once
under `/usr/bin/time -v` with the given flags into a fresh output folder. The quality gate's floors are off
(synthetic data has no meaningful accuracy). Per data set it records the job's seconds and peak RSS per
step (metrics.json), the whole run's wall time and peak RSS, and the scoring rate (unrated user x movie
pairs scored per second of the score step); then the growth exponent b of time ~ ratings^b and peak RSS ~
ratings^b (least squares on logs), and of the score step against users x movies.

Writes bench/results/<name>.json, .md and .png.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from nightly_run import parse_time_v  # bench/ is on sys.path when this script runs

from batch.contract import METRICS, read_latest, run_dir
from model.data.synth import SHAPES, write_synthetic

RESULTS = Path(__file__).parent / "results"
REPO = Path(__file__).resolve().parents[1]
NO_GATE = ["--gate-default-floor", "0", "--gate-floors", "{}", "--gate-references", "{}"]


def run_job(data_dir: Path, output: Path, flags: list[str]) -> dict:
    """One `ncf-batch run` under /usr/bin/time -v; its time figures and the run's metrics.json."""
    cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "batch", "run", "--data-dir", str(data_dir)]
    cmd += ["--output-dir", str(output), *NO_GATE, *flags]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    metrics = json.loads((run_dir(output, read_latest(output)) / METRICS).read_text())
    return {"command": " ".join(cmd[2:]), **parse_time_v(proc.stderr), "metrics": metrics}


def growth_exponent(x: list[float], y: list[float]) -> float | None:
    """b of y ~ x^b by least squares on logs (None with fewer than two distinct x)."""
    if len(set(x)) < 2:
        return None
    return round(float(np.polyfit(np.log(x), np.log(y), 1)[0]), 3)


def growth(runs: list[dict]) -> dict[str, float | None]:
    """Growth exponents of the runs' wall time, fit step and peak RSS against ratings, and of the score
    step against users x movies."""
    ratings = [r["ratings"] for r in runs]
    return {
        "wall_vs_ratings": growth_exponent(ratings, [r["wall_s"] for r in runs]),
        "fit_vs_ratings": growth_exponent(ratings, [r["step_seconds"]["fit"] for r in runs]),
        "rss_vs_ratings": growth_exponent(ratings, [r["peak_rss_mb"] for r in runs]),
        "score_vs_pairs": growth_exponent(
            [r["users"] * r["movies"] for r in runs], [r["step_seconds"]["score"] for r in runs]
        ),
    }


def summarise(name: str, run: dict) -> dict:
    m = run["metrics"]
    users, movies, ratings = m["n_users"], m["n_items"], m["n_interactions"]
    pairs = users * movies - ratings
    score_s = m["step_seconds"]["score"]
    return {
        "data": name,
        "users": users,
        "movies": movies,
        "ratings": ratings,
        "unrated_pairs": pairs,
        "wall_s": run["wall_s"],
        "cpu_s": round(run["user_cpu_s"] + run["system_cpu_s"], 1),
        "peak_rss_mb": run["peak_rss_mb"],
        "step_seconds": m["step_seconds"],
        "step_peak_rss_mb": m["step_peak_rss_mb"],
        "score_pairs_per_s": round(pairs / score_s) if score_s else None,
        "command": run["command"],
    }


def render(result: dict) -> str:
    rows = result["runs"]
    # job order of the steps, from the run with the most (runs of older code may lack a step: "-")
    fullest = max(rows, key=lambda r: len(r["step_seconds"]))
    steps = list(dict.fromkeys([*fullest["step_seconds"], *(s for r in rows for s in r["step_seconds"])]))
    lines = [
        f"# {result['title']}",
        "",
        "; ".join(f"`{i}`" for i in result["invocations"])
        + f" on a 2-core machine (load averages before each invocation {result['load_before']}, after "
        f"{result['load_after']}). Synthetic shapes are for scale and speed only: no accuracy is quoted.",
        "",
        "| data | users | movies | ratings | wall s | CPU s | peak RSS MB | scored pairs/s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['data']} | {r['users']:,} | {r['movies']:,} | {r['ratings']:,} | {r['wall_s']} | "
            f"{r['cpu_s']} | {r['peak_rss_mb']:,.0f} | {r['score_pairs_per_s'] or 0:,} |"
        )
    lines += ["", "Seconds per step (peak RSS MB at the step's end):", ""]
    lines += ["| data | " + " | ".join(steps) + " |", "|---|" + "---:|" * len(steps)]
    for r in rows:
        cells = [
            f"{r['step_seconds'][s]:.1f} ({r['step_peak_rss_mb'][s]:,.0f})" if s in r["step_seconds"] else "-"
            for s in steps
        ]
        lines.append(f"| {r['data']} | " + " | ".join(cells) + " |")
    g = result["growth"]
    lines += [
        "",
        f"Growth exponents (y ~ x^b): wall time vs ratings {g['wall_vs_ratings']} (it includes scoring, "
        f"which grows with users x movies), fit step vs ratings {g.get('fit_vs_ratings')}, peak RSS vs "
        f"ratings {g['rss_vs_ratings']}, score step vs users x movies {g['score_vs_pairs']}.",
        "",
        f"Flags of every run: `{' '.join(result['flags']) or '(defaults)'}`.",
    ]
    return "\n".join(lines) + "\n"


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sorted(result["runs"], key=lambda r: r["ratings"])
    ratings = [r["ratings"] for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    axes[0].loglog(ratings, [r["wall_s"] for r in rows], "o-", label="wall s")
    axes[0].loglog(ratings, [r["step_seconds"]["score"] for r in rows], "s--", label="score step s")
    axes[0].set(xlabel="ratings", ylabel="seconds", title="time")
    axes[1].loglog(ratings, [r["peak_rss_mb"] for r in rows], "o-")
    axes[1].set(xlabel="ratings", ylabel="peak RSS (MB)", title="memory")
    for ax in axes:
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    argv = sys.argv[1:]
    flags = argv[argv.index("--") + 1 :] if "--" in argv else []
    own = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shapes", nargs="*", default=["ml-1m", "ml-10m"], choices=sorted(SHAPES))
    parser.add_argument("--real", nargs="*", default=[], help="NAME=DIR of real data sets to run too")
    parser.add_argument("--work", type=Path, default=Path("/tmp/ncf-scale"))
    parser.add_argument("--name", default="scale")
    parser.add_argument("--render", action="store_true", help="only rewrite <name>.md/.png from its JSON")
    parser.add_argument(
        "--append",
        action="store_true",
        help="add these runs to bench/results/<name>.json (same job flags; a data set run again replaces "
        "its row)",
    )
    args = parser.parse_args(own)
    if args.render:
        result = json.loads((RESULTS / f"{args.name}.json").read_text())
        result["growth"] = growth(result["runs"])
        (RESULTS / f"{args.name}.json").write_text(json.dumps(result, indent=2) + "\n")
        (RESULTS / f"{args.name}.md").write_text(render(result))
        plot(result, RESULTS / f"{args.name}.png")
        return

    load_before = [round(x, 2) for x in os.getloadavg()]
    data = {f"synthetic {shape}": args.work / "data" / shape for shape in args.shapes}
    data.update({f"real {name}": Path(path) for name, _, path in (r.partition("=") for r in args.real)})
    for shape in args.shapes:
        if not (args.work / "data" / shape / "ratings.csv").exists():
            start = time.perf_counter()
            write_synthetic(shape, args.work / "data" / shape, seed=0)
            print(f"generated {shape} in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    runs = []
    for name, directory in data.items():
        output = args.work / "output" / name.replace(" ", "-")
        print(f"running the job on {name} ({directory})", file=sys.stderr)
        runs.append(summarise(name, run_job(directory, output, flags)))
        print(json.dumps(runs[-1]), file=sys.stderr)
    invocations = ["python bench/scale.py " + " ".join(argv)]
    loads = {"load_before": load_before, "load_after": [round(x, 2) for x in os.getloadavg()]}
    if args.append:
        earlier = json.loads((RESULTS / f"{args.name}.json").read_text())
        if earlier["flags"] != flags:
            raise SystemExit(f"--append: the job flags differ from the file's {earlier['flags']}")
        fresh = {r["data"] for r in runs}
        runs = [r for r in earlier["runs"] if r["data"] not in fresh] + runs
        invocations = earlier["invocations"] + invocations
        loads = {key: earlier[key] + [loads[key]] for key in loads}
    else:
        loads = {key: [value] for key, value in loads.items()}
    runs.sort(key=lambda r: (r["ratings"], r["data"]))
    result = {
        "title": "The nightly job on growing MovieLens shapes",
        "invocations": invocations,
        "flags": flags,
        **loads,
        "runs": runs,
        "growth": growth(runs),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / f"{args.name}.md").write_text(render(result))
    plot(result, RESULTS / f"{args.name}.png")
    print(render(result))


if __name__ == "__main__":
    main()
