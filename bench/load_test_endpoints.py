"""The lookup service's endpoints side by side, on a run the nightly job publishes from MovieLens 1M.

The run: `ncf-batch run --model itempop` on ML-1M with the default output settings (candidates 200,
similar movies K=100 (co-occurrence: ItemPop has no embeddings), history 10); the endpoints' work does not
depend on which model wrote the lists. Two measurements, rounds rotating the order of the endpoints:

- in process (no server): wall and CPU time per request of each endpoint through the Flask app, single
  thread, so p50/p99 are service times;
- under gunicorn (the repo's config, 2 workers) with wrk on loopback: req/s and latency percentiles per
  endpoint (`bench/wrk_endpoints.lua`), on the same 2 cores as wrk itself.

Endpoints: `user` (GET /v1/users/<id>/recommendations?n=10, the reference), `user_filtered` (the same with
genre=Drama&year_from=1990: no body cache, filters over the 200-deep list), `similar`
(GET /v1/movies/<id>/similar?n=10), `history` (GET /v1/users/<id>/history), `new_user`
(POST /v1/recommendations with 5 random liked movies, n=10).

    NCF_DATA_DIR=D python bench/load_test_endpoints.py [--reps 3 --duration 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from load_test import UNITS, Server, free_port  # bench/ is on sys.path when this script runs
from load_test_wsgi import environ as wsgi_environ

from batch.contract import MOVIES, read_latest, run_dir

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
ENDPOINTS = ["user", "user_filtered", "similar", "history", "new_user"]


def publish_run(data_dir: Path, output_dir: Path) -> Path:
    command = [
        sys.executable,
        "-m",
        "batch",
        "run",
        "--data-dir",
        str(data_dir),
        "--output-dir",
        str(output_dir),
    ]
    command += ["--model", "itempop", "--gate-floors", '{"ml-1m": 0}', "--gate-references", "{}"]
    subprocess.run(command, check=True, capture_output=True, cwd=HERE.parent)
    return run_dir(output_dir, read_latest(output_dir))


def requests_for(endpoint: str, rng: np.random.Generator, movies: np.ndarray, n: int) -> list[dict]:
    users = rng.integers(1, 6041, size=n)
    picks = movies[rng.integers(0, len(movies), size=(n, 5))]
    out = []
    for i in range(n):
        if endpoint == "user":
            out.append({"method": "GET", "path": f"/v1/users/{users[i]}/recommendations", "query": "n=10"})
        elif endpoint == "user_filtered":
            query = "n=10&genre=Drama&year_from=1990"
            out.append({"method": "GET", "path": f"/v1/users/{users[i]}/recommendations", "query": query})
        elif endpoint == "similar":
            out.append({"method": "GET", "path": f"/v1/movies/{picks[i, 0]}/similar", "query": "n=10"})
        elif endpoint == "history":
            out.append({"method": "GET", "path": f"/v1/users/{users[i]}/history", "query": ""})
        else:
            body = json.dumps({"liked": picks[i].tolist(), "n": 10}).encode()
            out.append({"method": "POST", "path": "/v1/recommendations", "query": "", "body": body})
    return out


def environ(request: dict) -> dict:
    return wsgi_environ(request["path"], request["query"], request["method"], request.get("body", b""))


def in_process(app, requests: list[dict]) -> tuple[list[float], float]:
    """(wall ms per request, CPU us per request) for one pass."""
    statuses = []
    walls = []
    cpu = time.process_time()
    for request in requests:
        env = environ(request)
        start = time.perf_counter()
        b"".join(app(env, lambda status, headers, exc_info=None: statuses.append(status)))
        walls.append((time.perf_counter() - start) * 1e3)
    cpu_us = (time.process_time() - cpu) / len(requests) * 1e6
    bad = [s for s in statuses if not s.startswith(("200", "404"))]
    if bad:
        raise RuntimeError(f"unexpected statuses {bad[:3]}")
    return walls, cpu_us


def run_wrk(server: Server, endpoint: str, movie_file: Path, duration: int, connections: int) -> dict:
    cmd = [
        "wrk",
        "-t2",
        f"-c{connections}",
        f"-d{duration}s",
        "--latency",
        "-s",
        str(HERE / "wrk_endpoints.lua"),
    ]
    cmd += [f"http://127.0.0.1:{server.port}", "--", endpoint, "6040", str(movie_file)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=duration + 60).stdout

    latency = {
        pct: float(value) * UNITS[unit]
        for pct, value, unit in re.findall(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    }
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "requests_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50_ms": latency["50"],
        "p99_ms": latency["99"],
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", type=Path, default=os.environ.get("NCF_DATA_DIR"))
    parser.add_argument(
        "--requests", type=int, default=3000, help="in-process requests per endpoint per round"
    )
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--note", default="")
    parser.add_argument("--out", default="load_test_endpoints", help="results file stem in bench/results")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="ncf-endpoints-") as work:
        output_dir = Path(work) / "output"
        run = publish_run(args.data_dir, output_dir)
        movies = np.sort(pq.read_table(run / MOVIES, columns=["movie_id"]).column(0).to_numpy())
        movie_file = Path(work) / "movies.txt"
        movie_file.write_text("\n".join(map(str, movies.tolist())) + "\n")

        os.environ["NCF_OUTPUT_DIR"] = str(output_dir)
        os.environ["NCF_RELOAD_INTERVAL_SECONDS"] = "0"
        from lookup_service.app import create_app

        app = create_app(start_reloader=False)
        for endpoint in ENDPOINTS:  # warm-up: every user's body rendered once, like a worker after a while
            in_process(app, requests_for(endpoint, rng, movies, 6040))
        walls: dict[str, list[float]] = {e: [] for e in ENDPOINTS}
        cpus: dict[str, list[float]] = {e: [] for e in ENDPOINTS}
        for r in range(args.reps):
            for endpoint in ENDPOINTS[r % 5 :] + ENDPOINTS[: r % 5]:
                wall, cpu = in_process(app, requests_for(endpoint, rng, movies, args.requests))
                walls[endpoint] += wall
                cpus[endpoint].append(cpu)
        inproc = {
            e: {
                "cpu_us_per_request": statistics.median(cpus[e]),
                "p50_ms": float(np.percentile(walls[e], 50)),
                "p99_ms": float(np.percentile(walls[e], 99)),
            }
            for e in ENDPOINTS
        }
        print(json.dumps(inproc, indent=1), flush=True)

        server = Server(output_dir, free_port(), Path(work), "endpoints", 0)
        try:
            server.wait_ready("/readyz")
            for endpoint in ENDPOINTS:
                run_wrk(server, endpoint, movie_file, 2, args.connections)  # warm-up
            loaded: dict[str, list[dict]] = {e: [] for e in ENDPOINTS}
            for r in range(args.reps):
                for endpoint in ENDPOINTS[r % 5 :] + ENDPOINTS[: r % 5]:
                    loaded[endpoint].append(
                        run_wrk(server, endpoint, movie_file, args.duration, args.connections)
                    )
                    print(endpoint, loaded[endpoint][-1], flush=True)
        finally:
            server.stop()
    gunicorn = {
        e: {k: statistics.median(row[k] for row in rows) for k in ("requests_per_s", "p50_ms", "p99_ms")}
        | {"non_2xx": sum(row["non_2xx"] for row in rows), "runs": rows}
        for e, rows in loaded.items()
    }
    result = {
        "command": "NCF_DATA_DIR=D python bench/load_test_endpoints.py "
        f"--reps {args.reps} --duration {args.duration} --connections {args.connections}",
        "note": args.note,
        "machine": {
            "cpus": os.cpu_count(),
            "load_average": os.getloadavg(),
            "python": platform.python_version(),
        },
        "in_process": inproc,
        "gunicorn_2_workers": gunicorn,
    }
    (RESULTS / f"{args.out}.json").write_text(json.dumps(result, indent=2) + "\n")
    base_in, base_g = inproc["user"]["p99_ms"], gunicorn["user"]["p99_ms"]
    lines = [
        "# Lookup service endpoints side by side",
        "",
        f"Command: `{result['command']}`; {os.cpu_count()} cores shared with wrk and other jobs, load "
        f"average {', '.join(f'{x:.1f}' for x in result['machine']['load_average'])} at the end.",
        "",
        *([f"Note: {args.note}", ""] if args.note else [""]),
        "| endpoint | in process: CPU us/req | p50 ms | p99 ms | p99 / user's | gunicorn 2 workers: req/s | "
        "p50 ms | p99 ms | p99 / user's | non-2xx |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for e in ENDPOINTS:
        i, g = inproc[e], gunicorn[e]
        lines.append(
            f"| {e} | {i['cpu_us_per_request']:.0f} | {i['p50_ms']:.3f} | {i['p99_ms']:.3f} | "
            f"{i['p99_ms'] / base_in:.2f} | {g['requests_per_s']:.0f} | {g['p50_ms']:.2f} | "
            f"{g['p99_ms']:.2f} | {g['p99_ms'] / base_g:.2f} | {g['non_2xx']} |"
        )
    lines += [
        "",
        "Medians over the rounds; in-process percentiles over every request of every round. `history` and "
        "`similar` answer 404 for the few random ids the run lacks (counted in non-2xx).",
        "",
    ]
    (RESULTS / f"{args.out}.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
