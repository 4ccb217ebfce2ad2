"""The lookup service at ML-25M scale: a run of 162,541 users x top-50 (8.1 M rows) against ML-1M's 6,040.

Builds synthetic runs directly with the contract writer (no model is trained: movie ids, titles, genres and
scores are random, seeded) in the shapes of ML-25M (162,541 users, 59,047 movies, sparse movie ids up to
~209,000) and ML-1M (6,040 users, 3,706 movies), with every output of the job at its default sizes:
recommendations.parquet (top 50) and candidates.parquet (200 deep) written chunk by chunk as the job does,
similar_movies.parquet (100 per movie), history.parquet (10 per user), then the served arrays
(`batch.serving_arrays.write_serving_arrays`), popular.parquet, the manifest.
The ML-1M shape is also published without served arrays (the Parquet-built store, as runs of older jobs).

For each run, with the pieces of bench/load_test.py (`Server`: `ncf-serve` with 2 workers on a free
loopback port; `run_wrk`):
- process spawn to `/readyz` 200 (`--starts` times);
- each worker's memory with the run loaded, and again after the load: VmRSS, RssAnon (private anonymous
  memory), RssFile (file pages mapped, shared page cache included) from /proc/<pid>/status; Pss and
  Private_Clean + Private_Dirty from /proc/<pid>/smaps_rollup;
- req/s, p50/p99 and server CPU per request with wrk on random users (`GET /v1/users/<1..n>/
  recommendations?n=10`), the servers taking turns, `--reps` rounds; each run is served as configured
  (body cache on) and, for ml-25m and ml-1m, also with `NCF_BODY_CACHE_MB=0` (the -uncached servers);
- the same requests to each server's Flask app called in this process (no server; process CPU clock, so
  other jobs' load does not inflate it): what the run's size costs per request, without the noise.
Also, in this process: the time of `write_serving_arrays`, `verify_run` and `load_run` on the ML-25M run.

    .venv/bin/python bench/lookup_scale.py

Writes bench/results/lookup_scale.json and .md. The machine is shared and noisy: medians of the rounds.
"""

from __future__ import annotations

import argparse
import ast
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
from load_test import Server, free_port, run_wrk
from load_test_wsgi import cpu_us_per_request

from batch.contract import (
    CANDIDATES,
    HISTORY,
    METRICS,
    MOVIES,
    POPULAR,
    RECOMMENDATIONS,
    SIMILAR_MOVIES,
    RunWriter,
    run_dir,
    verify_run,
)
from batch.serving_arrays import write_serving_arrays
from batch.settings import RunSettings
from lookup_service.app import create_app
from lookup_service.settings import ServerSettings, ServiceSettings
from lookup_service.store import load_run

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
# the job's defaults: top-N, candidates depth, similar movies per movie, history per user
_DEFAULTS = RunSettings.model_fields
TOP_N = _DEFAULTS["top_n"].default
DEPTH = _DEFAULTS["candidates"].default
SIMILAR_K = _DEFAULTS["similar_k"].default
HISTORY_N = _DEFAULTS["history"].default
# users, movies, largest movie id
SHAPES = {
    "ml-25m": (162_541, 59_047, 209_171),
    "ml-1m": (6_040, 3_706, 3_952),
    "ml-25m-movies-ml-1m-users": (6_040, 59_047, 209_171),
}
GENRES = ["Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary", "Drama"]
GENRES += ["Fantasy", "Film-Noir", "Horror", "IMAX", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller"]


def write_synthetic_run(output_dir: Path, shape: str, served: bool, seed: int = 0) -> tuple[str, dict]:
    """Publish a synthetic run of `shape`; returns its run id and the seconds of each writing step."""
    n_users, n_movies, max_id = SHAPES[shape]
    rng = np.random.default_rng(seed)
    movie_ids = np.sort(rng.choice(np.arange(1, max_id + 1), n_movies, replace=False)).astype(np.int32)
    n_genres = rng.integers(1, 4, n_movies)
    genres = [
        [GENRES[(m + k * 5) % len(GENRES)] for k in range(g)]
        for m, g in zip(movie_ids, n_genres, strict=True)
    ]
    movies = pa.table(
        {
            "movie_id": movie_ids,
            "title": [f"Synthetic Movie {m}, The ({1900 + m % 124})" for m in movie_ids.tolist()],
            "year": pa.array((1900 + movie_ids % 124).astype(np.int16)),
            "genres": pa.array(genres, pa.list_(pa.string())),
        }
    )
    # distinct movies per user: an arithmetic progression modulo n_movies with a step coprime to it
    steps = np.array([s for s in range(1, 2000) if math.gcd(s, n_movies) == 1])
    writer = RunWriter(output_dir)
    seconds = {}
    started = time.perf_counter()
    writer.write_table(MOVIES, movies)
    # candidates.parquet DEPTH deep per user, recommendations.parquet its first TOP_N ranks (as the job)
    with writer.open_table(RECOMMENDATIONS) as top, writer.open_table(CANDIDATES) as deep:
        for start in range(0, n_users, 10_000):
            users = np.arange(start + 1, min(start + 10_000, n_users) + 1, dtype=np.int32)
            first = rng.integers(0, n_movies, len(users))
            step = rng.choice(steps, len(users))
            picks = (first[:, None] + step[:, None] * np.arange(DEPTH)) % n_movies
            scores = np.sort(rng.random((len(users), DEPTH), dtype=np.float32), axis=1)[:, ::-1]
            for out, k in ((top, TOP_N), (deep, DEPTH)):
                out.write_table(
                    pa.table(
                        {
                            "user_id": np.repeat(users, k),
                            "rank": np.tile(np.arange(1, k + 1, dtype=np.int16), len(users)),
                            "movie_id": movie_ids[picks[:, :k]].ravel(),
                            "score": scores[:, :k].ravel(),
                        }
                    )
                )
    # similar_movies.parquet: SIMILAR_K other movies per movie; history.parquet: HISTORY movies per user
    with writer.open_table(SIMILAR_MOVIES) as out:
        for start in range(0, n_movies, 10_000):
            owners = np.arange(start, min(start + 10_000, n_movies))
            picks = (owners[:, None] + 1 + np.arange(SIMILAR_K)) % n_movies
            scores = np.sort(rng.random((len(owners), SIMILAR_K), dtype=np.float32), axis=1)[:, ::-1]
            out.write_table(
                pa.table(
                    {
                        "movie_id": np.repeat(movie_ids[owners], SIMILAR_K),
                        "rank": np.tile(np.arange(1, SIMILAR_K + 1, dtype=np.int16), len(owners)),
                        "similar_movie_id": movie_ids[picks].ravel(),
                        "score": scores.ravel(),
                    }
                )
            )
    with writer.open_table(HISTORY) as out:
        for start in range(0, n_users, 10_000):
            users = np.arange(start + 1, min(start + 10_000, n_users) + 1, dtype=np.int32)
            picks = (rng.integers(0, n_movies, len(users))[:, None] + np.arange(HISTORY_N)) % n_movies
            out.write_table(
                pa.table(
                    {
                        "user_id": np.repeat(users, HISTORY_N),
                        "rank": np.tile(np.arange(1, HISTORY_N + 1, dtype=np.int16), len(users)),
                        "movie_id": movie_ids[picks].ravel(),
                        "timestamp": np.tile(
                            1_500_000_000 - np.arange(HISTORY_N, dtype=np.int64), len(users)
                        ),
                    }
                )
            )
    seconds["parquet"] = time.perf_counter() - started
    if served:
        started = time.perf_counter()
        write_serving_arrays(writer)
        seconds["serving_arrays"] = time.perf_counter() - started
    popular = np.arange(TOP_N)
    writer.write_table(
        POPULAR,
        pa.table(
            {
                "rank": np.arange(1, TOP_N + 1, dtype=np.int16),
                "movie_id": movie_ids[popular],
                "score": np.linspace(1000, 100, TOP_N, dtype=np.float32),
            }
        ),
    )
    writer.write_json(METRICS, {"note": "synthetic scores for bench/lookup_scale.py, not a trained model"})
    started = time.perf_counter()
    writer.publish(
        code_version="bench",
        engine="synthetic",
        model_config={"seed": seed},
        dataset={"name": f"synthetic {shape} shape"},
        counts={"users": n_users, "movies": n_movies, "rows": n_users * TOP_N},
        top_n=TOP_N,
        candidates=DEPTH,
        similar_k=SIMILAR_K,
        similar_source="embedding",
        history=HISTORY_N,
    )
    seconds["publish"] = time.perf_counter() - started
    return writer.run_id, seconds


def worker_memory(server: Server, workers: int = 2) -> list[dict[str, float]]:
    """MB per worker (once all `workers` have been forked and answered): VmRSS, RssAnon, RssFile
    (/proc/<pid>/status); Pss, Pss_Anon, Pss_File and Private_Clean + Private_Dirty
    (/proc/<pid>/smaps_rollup)."""
    children_file = Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children")
    deadline = time.monotonic() + 30
    while len(children_file.read_text().split()) < workers and time.monotonic() < deadline:
        time.sleep(0.05)
    for _ in range(4 * workers):  # connections spread over the workers: each has finished its start-up
        server.wait_ready("/readyz")
    children = children_file.read_text().split()
    out = []
    for pid in children:
        text = Path(f"/proc/{pid}/status").read_text() + Path(f"/proc/{pid}/smaps_rollup").read_text()
        kb = {k: int(v) for k, v in re.findall(r"^(\w+):\s+(\d+) kB", text, re.M)}
        out.append(
            {
                "pid": int(pid),
                "rss_mb": kb["VmRSS"] / 1024,
                "rss_anon_mb": kb["RssAnon"] / 1024,
                "rss_file_mb": kb["RssFile"] / 1024,
                "pss_mb": kb["Pss"] / 1024,
                "pss_anon_mb": kb["Pss_Anon"] / 1024,
                "pss_file_mb": kb["Pss_File"] / 1024,
                "private_mb": (kb["Private_Clean"] + kb["Private_Dirty"]) / 1024,
            }
        )
    return out


GROWTH_PROBE = """
import random, re, sys
from pathlib import Path
from lookup_service.app import create_app
from lookup_service.settings import ServiceSettings

def kb(key):
    return int(re.search(key + r":\\s+(\\d+) kB", Path("/proc/self/status").read_text()).group(1))

before = {k: kb(k) for k in ("RssAnon", "RssFile")}
app = create_app(ServiceSettings(output_dir=Path(sys.argv[1]), reload_interval_seconds=0, body_cache_mb=0))
client = app.test_client()
for _ in range(int(sys.argv[3])):
    assert client.get(f"/v1/users/{random.randint(1, int(sys.argv[2]))}/recommendations").status_code == 200
print({k: (kb(k) - v) / 1024 for k, v in before.items()})
"""


def memory_growth_by_users(work: Path, requests: int = 20_000) -> dict[str, dict[str, float]]:
    """MB that loading a run and serving `requests` random users adds to a fresh process (body cache off):
    RssAnon (private heap) and RssFile (mapped file pages), for ML-25M's catalogue with 162,541 users and
    with 6,040 users."""
    out = {}
    for shape in ("ml-25m", "ml-25m-movies-ml-1m-users"):
        if not (work / shape).exists():
            write_synthetic_run(work / shape, shape, served=True)
        proc = subprocess.run(
            [sys.executable, "-c", GROWTH_PROBE, str(work / shape), str(SHAPES[shape][0]), str(requests)],
            capture_output=True,
            text=True,
            check=True,
        )
        growth = ast.literal_eval(proc.stdout.strip().splitlines()[-1])
        out[shape] = {"rss_anon_mb": growth["RssAnon"], "rss_file_mb": growth["RssFile"]}
    return out


def in_process_timings(run: Path) -> dict[str, float]:
    started = time.perf_counter()
    verify_run(run)
    verify = time.perf_counter() - started
    started = time.perf_counter()
    store = load_run(run)
    load = time.perf_counter() - started
    return {"verify_run_s": verify, "load_run_s": load, "memory_mapped": store.memory_mapped}


def wsgi_cpu(
    configs: dict[str, tuple[str, dict]], work: Path, users: dict[str, int], rounds: int, requests: int
) -> dict[str, list[float]]:
    """In this process, no server: process CPU per request (us) of each server's Flask app called directly
    (bench/load_test_wsgi.py), after 20,000 warm-up requests, in interleaved rounds of `requests` random
    users. Time lost to other jobs is not counted, so this separates what the run's size costs per request
    from the noise of a shared machine."""
    rng = np.random.default_rng(1)
    apps = {}
    for name, (run, env) in configs.items():
        cache_mb = float(env.get("NCF_BODY_CACHE_MB", ServiceSettings().body_cache_mb))
        settings = ServiceSettings(output_dir=work / run, reload_interval_seconds=0, body_cache_mb=cache_mb)
        apps[name] = create_app(settings)
        cpu_us_per_request(apps[name], "/v1/users/", rng.integers(1, users[name] + 1, 20_000))
    out: dict[str, list[float]] = {name: [] for name in apps}
    for _ in range(rounds):
        for name, app in apps.items():
            out[name].append(
                cpu_us_per_request(app, "/v1/users/", rng.integers(1, users[name] + 1, requests))
            )
    return out


PAIRS = [("ml-25m", "ml-1m"), ("ml-25m-uncached", "ml-1m-uncached"), ("ml-1m-parquet",)]


def round_order(rep: int) -> list[str]:
    """The servers in round `rep`: the pairs compared run back to back, which of a pair goes first
    alternates, and the pairs rotate, so drifting load from other jobs falls on both sides of a ratio."""
    pairs = PAIRS[rep % len(PAIRS) :] + PAIRS[: rep % len(PAIRS)]
    return [name for pair in pairs for name in (pair if rep % 2 == 0 else pair[::-1])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=6, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--starts", type=int, default=3)
    parser.add_argument("--note", default="", help="free text about the conditions, kept in the results")
    args = parser.parse_args()
    load_before = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="ncf-scale-"))
    variants = {"ml-25m": ("ml-25m", True), "ml-1m": ("ml-1m", True), "ml-1m-parquet": ("ml-1m", False)}
    uncached = {"NCF_BODY_CACHE_MB": "0"}
    configs = {name: (name, {}) for name in variants}  # server name: (run, extra environment)
    configs |= {"ml-25m-uncached": ("ml-25m", uncached), "ml-1m-uncached": ("ml-1m", uncached)}
    try:
        runs, writing, disk = {}, {}, {}
        for name, (shape, served) in variants.items():
            output = work / name
            runs[name], writing[name] = write_synthetic_run(output, shape, served)
            files = [p for p in run_dir(output, runs[name]).rglob("*") if p.is_file()]
            disk[name] = {str(p.relative_to(run_dir(output, runs[name]))): p.stat().st_size for p in files}
            print(name, runs[name], writing[name], flush=True)
        timings = {name: in_process_timings(run_dir(work / name, runs[name])) for name in variants}
        print("in-process", timings, flush=True)
        growth = memory_growth_by_users(work)
        print("memory growth by users", growth, flush=True)

        startups = {name: [] for name in variants}
        for rep in range(args.starts):
            for name in variants:
                server = Server(work / name, free_port(), work, f"start-{name}-{rep}", reload_interval=5.0)
                try:
                    startups[name].append(server.wait_ready("/readyz"))
                finally:
                    server.stop()
        print("start-up to ready", startups, flush=True)
        users = {name: SHAPES[variants[run][0]][0] for name, (run, _) in configs.items()}
        wsgi = wsgi_cpu(configs, work, users, args.reps, 4000)
        print("in-process WSGI us/request", wsgi, flush=True)

        servers = {
            name: Server(work / run, free_port(), work, name, reload_interval=5.0, env=env)
            for name, (run, env) in configs.items()
        }
        try:
            for server in servers.values():
                server.wait_ready("/readyz")
            memory_loaded = {name: worker_memory(server) for name, server in servers.items()}
            for name, server in servers.items():  # warm-up
                run_wrk(server, "/v1/users/", users[name], 2, args.connections, args.threads)
            reps = []
            for rep in range(args.reps):
                row = {}
                for name in round_order(rep):
                    row[name] = run_wrk(
                        servers[name],
                        "/v1/users/",
                        users[name],
                        args.duration,
                        args.connections,
                        args.threads,
                    )
                    print(rep, name, {k: v for k, v in row[name].items() if k != "command"}, flush=True)
                reps.append(row)
            memory_after = {name: worker_memory(server) for name, server in servers.items()}
        finally:
            for server in servers.values():
                server.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def median(name: str, key: str) -> float:
        return statistics.median(r[name][key] for r in reps)

    per_run = {
        name: {
            "requests_per_s": median(name, "requests_per_s"),
            "p50_ms": median(name, "p50_ms"),
            "p99_ms": median(name, "p99_ms"),
            "server_cpu_us_per_request": median(name, "server_cpu_us_per_request"),
            "startup_to_ready_s": statistics.median(startups[run]),
            "in_process_cpu_us_per_request": statistics.median(wsgi[name]),
            **{f"max_worker_{k}_loaded": max(w[k] for w in memory_loaded[name]) for k in MEMORY_KEYS},
            **{f"max_worker_{k}_after_load": max(w[k] for w in memory_after[name]) for k in MEMORY_KEYS},
            "failed_requests": sum(r[name]["non_2xx"] + r[name]["socket_errors"] for r in reps),
        }
        for name, (run, _) in configs.items()
    }
    big = per_run["ml-25m"]

    def ratio(a: str, b: str) -> float:
        """Median over the rounds of req/s of server a over server b in the same round."""
        return statistics.median(r[a]["requests_per_s"] / r[b]["requests_per_s"] for r in reps)

    def cpu_ratio(a: str, b: str) -> float:
        """Median over the rounds of b's server CPU per request over a's (higher is better for a)."""
        return statistics.median(
            r[b]["server_cpu_us_per_request"] / r[a]["server_cpu_us_per_request"] for r in reps
        )

    summary = {
        "startup_to_ready_s": big["startup_to_ready_s"],
        "max_worker_private_mb": big["max_worker_private_mb_after_load"],
        "max_worker_pss_mb": big["max_worker_pss_mb_after_load"],
        "max_worker_rss_mb": big["max_worker_rss_mb_after_load"],
        "requests_per_s_ratio_25m_over_1m": ratio("ml-25m", "ml-1m"),
        "requests_per_s_ratio_25m_over_1m_parquet": ratio("ml-25m", "ml-1m-parquet"),
        "requests_per_s_ratio_25m_over_1m_uncached": ratio("ml-25m-uncached", "ml-1m-uncached"),
        "cpu_per_request_ratio_1m_over_25m": cpu_ratio("ml-25m", "ml-1m"),
        "cpu_per_request_ratio_1m_over_25m_parquet": cpu_ratio("ml-25m", "ml-1m-parquet"),
        "cpu_per_request_ratio_1m_over_25m_uncached": cpu_ratio("ml-25m-uncached", "ml-1m-uncached"),
        "failed_requests": sum(r["failed_requests"] for r in per_run.values()),
        "in_process_cpu_us_25m_minus_1m": big["in_process_cpu_us_per_request"]
        - per_run["ml-1m"]["in_process_cpu_us_per_request"],
    }
    # what that difference makes of the server's CPU per request (the 1m server's median)
    server_us = per_run["ml-1m"]["server_cpu_us_per_request"]
    summary["expected_ratio_from_in_process"] = server_us / (
        server_us + summary["in_process_cpu_us_25m_minus_1m"]
    )
    targets = {
        "startup_to_ready_s": ("<=", 2.0),
        "max_worker_private_mb": ("<=", 150),
        "max_worker_pss_mb": ("<=", 150),
        "max_worker_rss_mb": ("<=", 150),
        "requests_per_s_ratio_25m_over_1m": (">=", 0.9),
        "requests_per_s_ratio_25m_over_1m_parquet": (">=", 0.9),
        "cpu_per_request_ratio_1m_over_25m": (">=", 0.9),
        "failed_requests": ("<=", 0),
    }
    met = {k: (summary[k] >= v if op == ">=" else summary[k] <= v) for k, (op, v) in targets.items()}
    result = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python " + " ".join(sys.argv),
        "note": args.note,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores shared with wrk and other jobs; load "
        f"average at start {tuple(round(x, 2) for x in load_before)}, at end "
        f"{tuple(round(x, 2) for x in os.getloadavg())}",
        "setup": "synthetic runs (random seeded scores, titles and genres; no model trained) written with "
        f"RunWriter, every output at the job's default size (top {TOP_N}, candidates {DEPTH} deep, "
        f"{SIMILAR_K} "
        f"similar movies per movie, history {HISTORY_N} per user): ml-25m = 162,541 users x {TOP_N} "
        "(8,127,050 rows), 59,047 movies; ml-1m = 6,040 users x 50, "
        "3,706 movies; each with served arrays (memory-mapped), and ml-1m-parquet the same ml-1m run "
        "without them (built in memory from the Parquet). ncf-serve (lookup_service/gunicorn_conf.py), "
        f"2 gthread workers x {ServerSettings().threads} threads, body cache "
        f"{ServiceSettings().body_cache_mb:g} MB per worker (0 for the -uncached servers); wrk "
        f"-t{args.threads} -c{args.connections} -d{args.duration}s on 127.0.0.1, random user, n=10; in each "
        "round the compared servers run back to back (`round_order`), ratios are medians of per-round "
        "ratios",
        "summary": summary,
        "targets": {k: f"{op} {v}" for k, (op, v) in targets.items()},
        "targets_met": met,
        "per_run": per_run,
        "writing_s": writing,
        "run_files_bytes": disk,
        "in_process": timings,
        "in_process_wsgi_cpu_us_per_request": wsgi,
        "memory_growth_by_users": growth,
        "startup_to_ready_s": startups,
        "worker_memory_loaded": memory_loaded,
        "worker_memory_after_load": memory_after,
        "reps": reps,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "lookup_scale.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "lookup_scale.md").write_text(markdown(result))
    print(json.dumps({"summary": summary, "targets_met": met}, indent=2))


MEMORY_KEYS = ["rss_mb", "rss_anon_mb", "rss_file_mb", "pss_mb", "private_mb"]


def markdown(result: dict) -> str:
    s, met, runs = result["summary"], result["targets_met"], result["per_run"]

    def mark(key: str) -> str:
        return "met" if met[key] else "**missed**"

    def mb(run: dict, when: str) -> str:
        return " / ".join(f"{run[f'max_worker_{k}_{when}']:.0f}" for k in MEMORY_KEYS)

    files = result["run_files_bytes"]["ml-25m"]
    lines = [
        "# Lookup service at ML-25M scale",
        "",
        f"Generated {result['generated_at']} by `{result['command']}`.",
        "",
        f"Machine: {result['machine']}. Figures are medians; expect noise from other jobs.",
        "",
        *([f"Note: {result['note']}", ""] if result.get("note") else []),
        f"Setup: {result['setup']}.",
        "",
        "| figure (ml-25m run) | measured | target | |",
        "|---|---|---|---|",
        f"| start-up to /readyz 200 | {s['startup_to_ready_s']:.2f} s | <= 2 s | "
        f"{mark('startup_to_ready_s')} |",
        f"| worker private memory (Private_Clean + Private_Dirty), max of 2, after load | "
        f"{s['max_worker_private_mb']:.0f} MB | <= 150 MB | {mark('max_worker_private_mb')} |",
        f"| worker PSS, max of 2, after load | {s['max_worker_pss_mb']:.0f} MB | <= 150 MB | "
        f"{mark('max_worker_pss_mb')} |",
        f"| worker RSS (the shared page-cache pages of the mapped arrays counted in full), max of 2, "
        "after load | "
        f"{s['max_worker_rss_mb']:.0f} MB | <= 150 MB | {mark('max_worker_rss_mb')} |",
        f"| req/s ml-25m / ml-1m (both memory-mapped) | {s['requests_per_s_ratio_25m_over_1m']:.2f} | "
        ">= 0.9 | "
        f"{mark('requests_per_s_ratio_25m_over_1m')} |",
        f"| req/s ml-25m / ml-1m built from Parquet | {s['requests_per_s_ratio_25m_over_1m_parquet']:.2f} | "
        f">= 0.9 | {mark('requests_per_s_ratio_25m_over_1m_parquet')} |",
        f"| server CPU per request, ml-1m / ml-25m (less sensitive to other jobs than req/s)"
        f" | {s['cpu_per_request_ratio_1m_over_25m']:.2f} | >= 0.9 | "
        f"{mark('cpu_per_request_ratio_1m_over_25m')} |",
        "| the same, ml-1m built from Parquet / ml-25m | "
        f"{s['cpu_per_request_ratio_1m_over_25m_parquet']:.2f} | | |",
        f"| req/s and CPU ratios with the body cache off for both (`NCF_BODY_CACHE_MB=0`) | "
        f"{s['requests_per_s_ratio_25m_over_1m_uncached']:.2f} and "
        f"{s['cpu_per_request_ratio_1m_over_25m_uncached']:.2f} | | |",
        f"| failed requests | {s['failed_requests']} | 0 | {mark('failed_requests')} |",
        "",
        "| run | req/s | p50 / p99 ms | server CPU us/req | in-process CPU us/req | ready s | worker MB "
        "loaded: RSS / RssAnon / RssFile / PSS / private | after load |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in runs.items():
        lines.append(
            f"| {name} | {r['requests_per_s']:.0f} | {r['p50_ms']:.2f} / {r['p99_ms']:.2f} | "
            f"{r['server_cpu_us_per_request']:.0f} | {r['in_process_cpu_us_per_request']:.0f} | "
            f"{r['startup_to_ready_s']:.2f} | {mb(r, 'loaded')} | "
            f"{mb(r, 'after_load')} |"
        )
    timing = result["in_process"]["ml-25m"]
    writing = result["writing_s"]["ml-25m"]
    growth = result["memory_growth_by_users"]
    big_users, few_users = growth["ml-25m"], growth["ml-25m-movies-ml-1m-users"]
    lines += [
        "",
        "Memory against the number of users (a fresh process loads the run and serves 20,000 random users, "
        "body cache off; the same 59,047-movie catalogue): 162,541 users add "
        f"{big_users['rss_anon_mb']:.0f} MB of private heap (RssAnon) and {big_users['rss_file_mb']:.0f} MB "
        f"of mapped file pages (RssFile, shared page cache); 6,040 users add {few_users['rss_anon_mb']:.0f} "
        f"and {few_users['rss_file_mb']:.0f} MB.",
        "",
        "In-process CPU per request (the Flask app called directly, process CPU clock: not inflated by "
        f"other jobs): ml-25m costs {s['in_process_cpu_us_25m_minus_1m']:.0f} us more than ml-1m; on the "
        f"ml-1m server's {runs['ml-1m']['server_cpu_us_per_request']:.0f} us per request that predicts a "
        f"req/s ratio of {s['expected_ratio_from_in_process']:.2f}. At ml-1m the body cache (16 MB per "
        "worker) holds every user's body once warm; at ml-25m only a small share of them, so most requests "
        "render (compare the -uncached rows).",
        "",
        f"ml-25m run on disk: {', '.join(f'{k} {v / 1e6:.1f} MB' for k, v in sorted(files.items()))}.",
        "",
        f"Writing it: Parquet {writing['parquet']:.1f} s, served arrays (`write_serving_arrays`, from the "
        f"Parquet) {writing['serving_arrays']:.1f} s, publish (sha256 of every file) "
        f"{writing['publish']:.1f} s. Loading it in one process: `verify_run` {timing['verify_run_s']:.2f} "
        f"s, `load_run` (verify included) {timing['load_run_s']:.2f} s; ml-1m-parquet `load_run` "
        f"{result['in_process']['ml-1m-parquet']['load_run_s']:.2f} s.",
        "",
        "## Rounds",
        "",
        "| round | run | req/s | p50 / p99 ms | server CPU us/req |",
        "|---|---|---|---|---|",
    ]
    for i, row in enumerate(result["reps"]):
        for name, x in row.items():
            lines.append(
                f"| {i} | {name} | {x['requests_per_s']:.0f} | {x['p50_ms']:.2f} / {x['p99_ms']:.2f} | "
                f"{x['server_cpu_us_per_request']:.0f} |"
            )
    lines += [
        "",
        "Start-up to ready per start (s): "
        + "; ".join(
            f"{n} {', '.join(f'{x:.2f}' for x in v)}" for n, v in result["startup_to_ready_s"].items()
        )
        + ".",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
