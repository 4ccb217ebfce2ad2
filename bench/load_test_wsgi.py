"""In-process companion of bench/load_test.py: CPU per request of the WSGI apps themselves, no server.

Calls the lookup service's Flask app (body cache on, and off with `NCF_BODY_CACHE_MB=0`) and the bare
endpoint's app (bench/bare_app.py) directly with WSGI environs for `GET <prefix><user>/recommendations?n=10`
(users drawn uniformly from all 6,040 of an ML-1M-sized run, seeded), in interleaved rounds, timing each
round with the process CPU clock (time spent preempted by other jobs is not counted). This isolates what
the service adds per request over the bare endpoint; gunicorn, sockets and access logging (the same for
both) come on top and are measured by bench/load_test.py.

    .venv/bin/python bench/load_test_wsgi.py --data-dir /work/shared/data/ml-1m

Writes bench/results/load_test_wsgi.json and .md.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from bare_app import create_bare_app  # bench/ is on sys.path when this script runs
from load_test import RESULTS, point_latest, write_ml1m_run

from lookup_service.app import create_app
from model.data import DataLoader

WSGIApp = Callable[[dict, Callable], object]


def environ(path: str, query: str, method: str = "GET", body: bytes = b"") -> dict:
    """A WSGI environ for one request to 127.0.0.1:8000 (a JSON `body` for POST)."""
    return {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SCRIPT_NAME": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1:8000",
        "CONTENT_TYPE": "application/json" if body else "",
        "CONTENT_LENGTH": str(len(body)) if body else "",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.version": (1, 0),
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }


def start_response(status: str, headers: list, exc_info=None) -> None:
    if not status.startswith("200"):
        raise RuntimeError(f"unexpected status {status}")


def cpu_us_per_request(app: WSGIApp, prefix: str, users: np.ndarray) -> float:
    """Process CPU time per request (us) for one pass over `users`."""
    environs = [environ(f"{prefix}{u}/recommendations", "n=10") for u in users.tolist()]
    started = time.process_time()
    for env in environs:
        b"".join(app(env, start_response))
    return (time.process_time() - started) / len(environs) * 1e6


def build_apps(output_dir: Path) -> dict[str, tuple[WSGIApp, str]]:
    os.environ["NCF_OUTPUT_DIR"] = str(output_dir)
    os.environ["NCF_RELOAD_INTERVAL_SECONDS"] = "0"
    service = create_app(start_reloader=False)
    os.environ["NCF_BODY_CACHE_MB"] = "0"
    uncached = create_app(start_reloader=False)
    del os.environ["NCF_BODY_CACHE_MB"]
    return {
        "service": (service, "/v1/users/"),
        "service_uncached": (uncached, "/v1/users/"),
        "bare": (create_bare_app(), "/bare/users/"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=os.environ.get("NCF_DATA_DIR"))
    parser.add_argument("--requests", type=int, default=10_000, help="requests per app per round")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--note", default="", help="free text about the conditions, kept in the results")
    parser.add_argument("--out", default="load_test_wsgi", help="results file stem in bench/results")
    args = parser.parse_args()
    if args.data_dir is None:
        parser.error("--data-dir (or NCF_DATA_DIR) is needed to build the ML-1M-sized run")

    with tempfile.TemporaryDirectory(prefix="ncf-wsgi-") as work:
        output_dir = Path(work)
        point_latest(output_dir, write_ml1m_run(output_dir, DataLoader(args.data_dir).load(), seed=1))
        apps = build_apps(output_dir)
        rng = np.random.default_rng(0)
        for app, prefix in apps.values():  # warm-up: the cached service has rendered every body once
            cpu_us_per_request(app, prefix, np.arange(1, 6041))
        rounds: dict[str, list[float]] = {name: [] for name in apps}
        for r in range(args.rounds):
            users = rng.integers(1, 6041, size=args.requests)
            names = list(apps)
            for name in names[r % 3 :] + names[: r % 3]:
                app, prefix = apps[name]
                rounds[name].append(cpu_us_per_request(app, prefix, users))
            print(r, {name: round(v[-1], 1) for name, v in rounds.items()}, flush=True)

    median = {name: statistics.median(v) for name, v in rounds.items()}
    result = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python " + " ".join(sys.argv),
        "note": args.note,
        "code": str(Path(sys.modules["lookup_service"].__file__).parent),
        "load_average": os.getloadavg(),
        "cpu_us_per_request_median": median,
        "cpu_us_per_request_min": {name: min(v) for name, v in rounds.items()},
        "service_minus_bare_us": median["service"] - median["bare"],
        "uncached_minus_bare_us": median["service_uncached"] - median["bare"],
        "rounds": rounds,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.out}.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# Lookup service: CPU per request of the WSGI apps (no server)",
        "",
        f"Generated {result['generated_at']} by `{result['command']}` (code from {result['code']}); load "
        f"average {tuple(round(x, 2) for x in result['load_average'])} on a shared 2-core machine.",
        "",
        *([f"Note: {args.note}", ""] if args.note else []),
        f"Median (min) of {args.rounds} interleaved rounds of {args.requests} requests per app, process CPU "
        "time; random users of 6,040, n=10, after one warm-up pass over every user.",
        "",
        "| app | CPU us/request median (min) | minus bare |",
        "|---|---|---|",
    ]
    for name in apps:
        lines.append(
            f"| {name} | {median[name]:.1f} ({result['cpu_us_per_request_min'][name]:.1f}) | "
            f"{median[name] - median['bare']:+.1f} |"
        )
    (RESULTS / f"{args.out}.md").write_text("\n".join(lines) + "\n")
    print(json.dumps({k: result[k] for k in ("cpu_us_per_request_median", "service_minus_bare_us")}))


if __name__ == "__main__":
    main()
