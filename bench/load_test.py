"""Load test of the lookup service under gunicorn on loopback, with an ML-1M-sized run.

Measures, with wrk (Debian package) on 127.0.0.1:
- req/s and latency percentiles of `GET /v1/users/<random user>/recommendations?n=10` (users drawn
  uniformly from all 6,040, so every body is rendered at least once per worker), served twice: as
  configured (rendered bodies cached per run, `NCF_BODY_CACHE_MB`) and with the cache off
  (`NCF_BODY_CACHE_MB=0`: every request renders, the cold-cache worst case); and of a bare Flask endpoint
  returning the same precomputed JSON bodies from a dict through the service's own `json_response` (same
  headers, `X-Run-Id` included, so the same access-log lines) (bench/bare_app.py); the three alternate within
  one run (the order rotates every repetition, as whichever runs first or last in a round measured
  differently on a busy machine), same gunicorn config (lookup_service/gunicorn_conf.py), same wrk
  settings;
- RSS and PSS of each worker with the run loaded;
- start-up (process spawn) to `/readyz` 200;
- failed requests while LATEST flips between two runs `--flips` times under load.

The run: every ML-1M user (6,040) x top-50 of a seeded random score over the movies each user has not
rated, real titles/genres from movies.dat (`DataLoader`), popularity list from rating counts. Or pass
`--output-dir` holding real published runs (LATEST plus one other run for the flip test).

    .venv/bin/python bench/load_test.py --data-dir /work/shared/data/ml-1m

Writes bench/results/load_test.json and bench/results/load_test.md. The machine is shared and noisy:
figures are medians of `--reps` repetitions.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa

from batch.contract import LATEST, METRICS, MOVIES, POPULAR, RECOMMENDATIONS, RunWriter, read_latest
from lookup_service.settings import ServerSettings, ServiceSettings
from model.data import DataLoader, Dataset

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
TOP_N = 50


def write_ml1m_run(output_dir: Path, dataset: Dataset, seed: int) -> str:
    """Publish a synthetic run of the ML-1M shape with `RunWriter`; returns its run id."""
    rng = np.random.default_rng(seed)
    scores = rng.random((dataset.n_users, dataset.n_items), dtype=np.float32)
    scores[dataset.user_idx, dataset.item_idx] = -1.0  # never recommend what the user rated
    top = np.argpartition(-scores, TOP_N, axis=1)[:, :TOP_N]
    top_scores = np.take_along_axis(scores, top, axis=1)
    order = np.argsort(-top_scores, axis=1)
    top, top_scores = np.take_along_axis(top, order, axis=1), np.take_along_axis(top_scores, order, axis=1)
    counts = np.bincount(dataset.item_idx, minlength=dataset.n_items)
    popular = np.argsort(-counts, kind="stable")[:TOP_N]
    writer = RunWriter(output_dir)
    writer.write_table(
        RECOMMENDATIONS,
        pa.table(
            {
                "user_id": np.repeat(dataset.user_ids, TOP_N),
                "rank": np.tile(np.arange(1, TOP_N + 1), dataset.n_users),
                "movie_id": dataset.item_ids[top].ravel(),
                "score": top_scores.ravel(),
            }
        ),
    )
    writer.write_table(MOVIES, pa.Table.from_pandas(dataset.movies, preserve_index=False))
    writer.write_table(
        POPULAR,
        pa.table(
            {
                "rank": np.arange(1, TOP_N + 1),
                "movie_id": dataset.item_ids[popular],
                "score": (counts[popular] / counts.max()).astype(np.float32),
            }
        ),
    )
    writer.write_json(METRICS, {"note": "synthetic scores for the load test, not a trained model"})
    writer.publish(
        code_version="bench",
        engine="synthetic",
        model_config={"seed": seed},
        dataset={"name": dataset.name},
        counts={"users": dataset.n_users, "movies": len(dataset.movies)},
        top_n=TOP_N,
    )
    return writer.run_id


class Server:
    """`ncf-serve` (gunicorn + the repo's config) on a loopback port; `app` overrides the WSGI app."""

    def __init__(
        self,
        output_dir: Path,
        port: int,
        log_dir: Path,
        name: str,
        reload_interval: float,
        app=None,
        env: dict[str, str] | None = None,
    ):
        self.port = port
        self.access_log = log_dir / f"{name}.access.log"
        env = {
            **os.environ,
            "NCF_OUTPUT_DIR": str(output_dir),
            "NCF_BIND": f"127.0.0.1:{port}",
            "NCF_WORKERS": "2",
            "NCF_RELOAD_INTERVAL_SECONDS": str(reload_interval),
            "NCF_ACCESS_LOG": str(self.access_log),
            **(env or {}),
        }
        extra = ["--pythonpath", str(HERE), app] if app else []
        self.started = time.perf_counter()
        self.errors = (log_dir / f"{name}.err").open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "lookup_service.serve", *extra],
            env=env,
            stdout=self.errors,
            stderr=self.errors,
        )

    def wait_ready(self, path: str, timeout: float = 60.0) -> float:
        """Seconds from spawn until `path` answers 200."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=2) as response:
                    if response.status == 200:
                        return time.perf_counter() - self.started
            except OSError:
                time.sleep(0.01)
        raise RuntimeError(f"server on {self.port} not ready after {timeout}s")

    def worker_memory(self) -> list[dict[str, float]]:
        """RSS and PSS (MB) of each worker process."""
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()
        out = []
        for pid in children:
            rss = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
            pss = re.search(r"Pss:\s+(\d+) kB", Path(f"/proc/{pid}/smaps_rollup").read_text())
            out.append(
                {"pid": int(pid), "rss_mb": int(rss.group(1)) / 1024, "pss_mb": int(pss.group(1)) / 1024}
            )
        return out

    def cpu_seconds(self) -> float:
        """user + system CPU time of the master and its current workers (from /proc)."""
        pids = [str(self.process.pid)]
        pids += Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()
        ticks = 0
        for pid in pids:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
        return ticks / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.errors.close()


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def run_wrk(
    server: Server, prefix: str, max_user: int, duration: int, connections: int, threads: int
) -> dict:
    """One wrk run; also the server's CPU time per request (less sensitive to other jobs than req/s)."""
    port = server.port
    cmd = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration}s",
        "--latency",
        "-s",
        str(HERE / "wrk_users.lua"),
        f"http://127.0.0.1:{port}",
        "--",
        prefix,
        str(max_user),
    ]
    cpu_before = server.cpu_seconds()
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=duration + 60).stdout
    cpu = server.cpu_seconds() - cpu_before
    latency = {
        pct: float(value) * UNITS[unit]
        for pct, value, unit in re.findall(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    }
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    return {
        "requests_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "requests": requests,
        "server_cpu_us_per_request": cpu / max(requests, 1) * 1e6,
        "p50_ms": latency["50"],
        "p90_ms": latency["90"],
        "p99_ms": latency["99"],
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "socket_errors": sum(int(x) for x in socket_errors.groups()) if socket_errors else 0,
        "command": " ".join(cmd),
    }


def point_latest(output_dir: Path, run_id: str) -> None:
    tmp = output_dir / f".{LATEST}.bench.tmp"
    tmp.write_text(run_id + "\n")
    os.replace(tmp, output_dir / LATEST)


def flip_test(args, output_dir: Path, runs: list[str], log_dir: Path, max_user: int) -> dict:
    """wrk under load while LATEST alternates between two runs `args.flips` times."""
    server = Server(output_dir, free_port(), log_dir, "flip", reload_interval=args.flip_reload_interval)
    try:
        server.wait_ready("/readyz")
        duration = int(args.flips * args.flip_every + 4)
        wrk = subprocess.Popen(
            [
                "wrk",
                f"-t{args.threads}",
                f"-c{args.connections}",
                f"-d{duration}s",
                "--latency",
                "-s",
                str(HERE / "wrk_users.lua"),
                f"http://127.0.0.1:{server.port}",
                "--",
                "/v1/users/",
                str(max_user),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        time.sleep(1.0)
        for flip in range(args.flips):
            point_latest(output_dir, runs[(flip + 1) % 2])
            time.sleep(args.flip_every)
        out, _ = wrk.communicate(timeout=duration + 60)
    finally:
        server.stop()
    served = {}
    statuses = {}
    for line in server.access_log.read_text().splitlines():
        match = re.search(r'" (\d{3}) .* run=(\S+)$', line)
        if match:
            statuses[match.group(1)] = statuses.get(match.group(1), 0) + 1
            served[match.group(2)] = served.get(match.group(2), 0) + 1
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "flips": args.flips,
        "flip_every_s": args.flip_every,
        "reload_interval_s": args.flip_reload_interval,
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
        "requests_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "socket_errors": sum(int(x) for x in errors.groups()) if errors else 0,
        "socket_errors_connect_read_write_timeout": [int(x) for x in errors.groups()] if errors else [0] * 4,
        "access_log_statuses": statuses,
        "access_log_requests_per_run": served,
        "refused_or_failed_reloads": server_log_count(log_dir / "flip.err", "refused run"),
        "reloads_logged": server_log_count(log_dir / "flip.err", "now serving run"),
    }


def server_log_count(path: Path, needle: str) -> int:
    return sum(needle in line for line in path.read_text().splitlines())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=os.environ.get("NCF_DATA_DIR"))
    parser.add_argument("--output-dir", type=Path, help="use real published runs instead of synthetic ones")
    parser.add_argument("--duration", type=int, default=6, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--flips", type=int, default=10)
    parser.add_argument("--flip-every", type=float, default=2.0)
    parser.add_argument("--flip-reload-interval", type=float, default=0.5)
    parser.add_argument("--note", default="", help="free text about the conditions, kept in the results")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="ncf-load-"))
    try:
        if args.output_dir:
            output_dir = args.output_dir
            latest = read_latest(output_dir)
            others = sorted(p.name for p in (output_dir / "runs").iterdir() if not p.name.startswith("."))
            runs = [latest, next(r for r in reversed(others) if r != latest)]
            source = f"published runs in {output_dir}"
        else:
            if args.data_dir is None:
                parser.error("--data-dir (or NCF_DATA_DIR) is needed to build the ML-1M-sized run")
            dataset = DataLoader(args.data_dir).load()
            output_dir = work / "output"
            output_dir.mkdir()
            runs = [write_ml1m_run(output_dir, dataset, seed) for seed in (1, 2)]
            point_latest(output_dir, runs[0])
            source = f"synthetic ML-1M-sized runs (6,040 users x {TOP_N}) with titles from {args.data_dir}"
        max_user = 6040
        print(f"runs {runs} in {output_dir}", flush=True)

        startups = []
        for rep in range(args.reps):
            server = Server(output_dir, free_port(), work, f"startup{rep}", reload_interval=5.0)
            startups.append(server.wait_ready("/readyz"))
            server.stop()
        print(f"start-up to ready: {startups}", flush=True)

        servers = {
            "service": (Server(output_dir, free_port(), work, "service", reload_interval=5.0), "/v1/users/"),
            "service_uncached": (
                Server(
                    output_dir,
                    free_port(),
                    work,
                    "service_uncached",
                    reload_interval=5.0,
                    env={"NCF_BODY_CACHE_MB": "0"},
                ),
                "/v1/users/",
            ),
            "bare": (
                Server(
                    output_dir,
                    free_port(),
                    work,
                    "bare",
                    reload_interval=5.0,
                    app="bare_app:create_bare_app()",
                ),
                "/bare/users/",
            ),
        }
        try:
            for server, prefix in servers.values():
                server.wait_ready("/readyz" if prefix == "/v1/users/" else "/bare/users/1/recommendations")
            for server, prefix in servers.values():  # warm-up
                run_wrk(server, prefix, max_user, 2, args.connections, args.threads)
            reps = []
            for rep in range(args.reps):
                row = {}
                names = list(servers)
                for name in names[rep % 3 :] + names[: rep % 3]:  # each endpoint goes first in turn
                    server, prefix = servers[name]
                    row[name] = run_wrk(
                        server, prefix, max_user, args.duration, args.connections, args.threads
                    )
                    print(rep, name, {k: v for k, v in row[name].items() if k != "command"}, flush=True)
                bare_rate = row["bare"]["requests_per_s"]
                row["ratio"] = row["service"]["requests_per_s"] / bare_rate
                row["ratio_uncached"] = row["service_uncached"]["requests_per_s"] / bare_rate
                reps.append(row)
            memory = {name: server.worker_memory() for name, (server, _) in servers.items()}
        finally:
            for server, _ in servers.values():
                server.stop()

        flip = flip_test(args, output_dir, runs, work, max_user)
        print("flip", flip, flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def median(name: str, key: str) -> float:
        return statistics.median(r[name][key] for r in reps)

    summary = {
        "service_requests_per_s": median("service", "requests_per_s"),
        "service_p99_ms": median("service", "p99_ms"),
        "bare_requests_per_s": median("bare", "requests_per_s"),
        "bare_p99_ms": median("bare", "p99_ms"),
        "throughput_ratio_service_over_bare": statistics.median(r["ratio"] for r in reps),
        "service_cpu_us_per_request": median("service", "server_cpu_us_per_request"),
        "uncached_requests_per_s": median("service_uncached", "requests_per_s"),
        "uncached_p99_ms": median("service_uncached", "p99_ms"),
        "throughput_ratio_uncached_over_bare": statistics.median(r["ratio_uncached"] for r in reps),
        "uncached_cpu_us_per_request": median("service_uncached", "server_cpu_us_per_request"),
        "bare_cpu_us_per_request": median("bare", "server_cpu_us_per_request"),
        "max_worker_rss_mb": max(w["rss_mb"] for w in memory["service"]),  # bodies cached by then
        "max_worker_pss_mb": max(w["pss_mb"] for w in memory["service"]),
        "startup_to_ready_s": statistics.median(startups),
        "failed_requests_during_flips": flip["non_2xx"] + flip["socket_errors"],
        "failed_requests_during_load": sum(
            r[n]["non_2xx"] + r[n]["socket_errors"] for r in reps for n in servers
        ),
    }
    targets = {
        "service_requests_per_s": (">=", 2000),
        "service_p99_ms": ("<=", 25),
        "throughput_ratio_service_over_bare": (">=", 0.9),
        "max_worker_rss_mb": ("<=", 150),
        "startup_to_ready_s": ("<=", 2.0),
        "failed_requests_during_flips": ("<=", 0),
    }
    met = {k: (summary[k] >= v if op == ">=" else summary[k] <= v) for k, (op, v) in targets.items()}
    result = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python " + " ".join(sys.argv),
        "note": args.note,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores shared with the load generator (and any "
        f"other job); load average at end {os.getloadavg()}",
        "setup": f"{source}; gunicorn via ncf-serve (lookup_service/gunicorn_conf.py), 2 gthread workers x "
        f"{ServerSettings().threads} threads, access log to a file, body cache "
        f"{ServiceSettings().body_cache_mb:g} MB per worker (0 for the uncached variant); the bare endpoint "
        "sends the same body and headers (X-Run-Id included); wrk "
        f"-t{args.threads} -c{args.connections} -d{args.duration}s on 127.0.0.1, random user, n=10",
        "summary": summary,
        "targets": {k: f"{op} {v}" for k, (op, v) in targets.items()},
        "targets_met": met,
        "reps": reps,
        "startup_to_ready_s": startups,
        "worker_memory": memory,
        "flip_test": flip,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "load_test.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "load_test.md").write_text(markdown(result))
    print(json.dumps(summary, indent=2))


def markdown(result: dict) -> str:
    s, met, flip = result["summary"], result["targets_met"], result["flip_test"]
    bare_over_service_cpu = s["bare_cpu_us_per_request"] / s["service_cpu_us_per_request"]

    def mark(key: str) -> str:
        return "met" if met[key] else "**missed**"

    lines = [
        "# Lookup service load test",
        "",
        f"Generated {result['generated_at']} by `{result['command']}`.",
        "",
        f"Machine: {result['machine']}. The load generator (wrk) runs on the same 2 cores as the server. "
        "Figures are medians of the repetitions; expect run-to-run noise from other jobs.",
        "",
        *([f"Note: {result['note']}", ""] if result.get("note") else []),
        f"Setup: {result['setup']}.",
        "",
        "| figure | measured (median) | target | |",
        "|---|---|---|---|",
        f"| recommendations endpoint, req/s | {s['service_requests_per_s']:.0f} | >= 2,000 | "
        f"{mark('service_requests_per_s')} |",
        f"| recommendations endpoint, p99 | {s['service_p99_ms']:.1f} ms | <= 25 ms | "
        f"{mark('service_p99_ms')} |",
        f"| bare Flask endpoint (precomputed JSON from a dict), req/s | {s['bare_requests_per_s']:.0f} | | |",
        f"| bare Flask endpoint, p99 | {s['bare_p99_ms']:.1f} ms | | |",
        f"| service / bare throughput | {s['throughput_ratio_service_over_bare']:.2f} | >= 0.9 | "
        f"{mark('throughput_ratio_service_over_bare')} |",
        f"| server CPU per request: service / bare | {s['service_cpu_us_per_request']:.0f} / "
        f"{s['bare_cpu_us_per_request']:.0f} us (bare/service {bare_over_service_cpu:.2f}) | | |",
        f"| uncached (`NCF_BODY_CACHE_MB=0`, every request renders), req/s / p99 | "
        f"{s['uncached_requests_per_s']:.0f} / {s['uncached_p99_ms']:.1f} ms | | |",
        f"| uncached / bare throughput (cold-cache worst case) | "
        f"{s['throughput_ratio_uncached_over_bare']:.2f} | | |",
        f"| server CPU per request: uncached | {s['uncached_cpu_us_per_request']:.0f} us | | |",
        f"| worker RSS (max of 2) | {s['max_worker_rss_mb']:.0f} MB (PSS {s['max_worker_pss_mb']:.0f} MB) | "
        f"<= 150 MB | {mark('max_worker_rss_mb')} |",
        f"| start-up to /readyz 200 | {s['startup_to_ready_s']:.2f} s | <= 2 s | "
        f"{mark('startup_to_ready_s')} |",
        f"| failed requests while LATEST flipped {flip['flips']} times | {s['failed_requests_during_flips']} "
        f"of {flip['requests']} | 0 | {mark('failed_requests_during_flips')} |",
        "",
        "## Repetitions",
        "",
        "| rep | endpoint | req/s | p50 / p99 ms | server CPU us/req | ratio to bare |",
        "|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(result["reps"]):
        ratios = {"service": f"{r['ratio']:.2f}", "service_uncached": f"{r['ratio_uncached']:.2f}"}
        ratios["bare"] = ""
        for name, ratio in ratios.items():
            x = r[name]
            lines.append(
                f"| {i} | {name} | {x['requests_per_s']:.0f} | {x['p50_ms']:.2f} / {x['p99_ms']:.2f} | "
                f"{x['server_cpu_us_per_request']:.0f} | {ratio} |"
            )
    lines += [
        "",
        f"Start-up to ready per start (s): {', '.join(f'{x:.2f}' for x in result['startup_to_ready_s'])}.",
        "",
        f"Flip test: {flip['requests']} requests at {flip['requests_per_s']:.0f} req/s while LATEST flipped "
        f"{flip['flips']} times every {flip['flip_every_s']} s (reload poll {flip['reload_interval_s']} s); "
        f"non-2xx {flip['non_2xx']}, socket errors {flip['socket_errors']}; access log statuses "
        f"{flip['access_log_statuses']}; requests per run {flip['access_log_requests_per_run']}; "
        f"reloads logged (all workers) {flip['reloads_logged']}.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
