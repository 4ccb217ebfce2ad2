"""Start the real service (`ncf-serve`, i.e. gunicorn with the repo's config) on a free loopback port."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LiveServer:
    process: subprocess.Popen
    port: int
    stdout: Path
    stderr: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str, timeout: float = 5.0) -> tuple[int, dict[str, str], dict]:
        """(status, headers, JSON body) of a GET; error statuses are returned, not raised."""
        try:
            with urllib.request.urlopen(self.base + path, timeout=timeout) as response:
                return response.status, dict(response.headers), json.loads(response.read())
        except urllib.error.HTTPError as err:
            return err.code, dict(err.headers), json.loads(err.read())

    def wait_until(self, predicate, timeout: float = 20.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}: {self.stderr.read_text()}")
            with contextlib.suppress(OSError):
                if predicate():
                    return True
            time.sleep(0.05)
        return False

    def logs(self) -> tuple[str, str]:
        return self.stdout.read_text(), self.stderr.read_text()


@contextlib.contextmanager
def live_server(
    output_dir: Path, log_dir: Path, workers: int = 2, threads: int = 2, reload_interval: float = 0.2
) -> Iterator[LiveServer]:
    port = free_port()
    env = {
        **os.environ,
        "NCF_OUTPUT_DIR": str(output_dir),
        "NCF_RELOAD_INTERVAL_SECONDS": str(reload_interval),
        "NCF_BIND": f"127.0.0.1:{port}",
        "NCF_WORKERS": str(workers),
        "NCF_THREADS": str(threads),
        "NCF_GRACEFUL_TIMEOUT_SECONDS": "10",
    }
    stdout, stderr = log_dir / "gunicorn.out", log_dir / "gunicorn.err"
    with stdout.open("w") as out, stderr.open("w") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "lookup_service.serve"], env=env, stdout=out, stderr=err
        )
    server = LiveServer(process, port, stdout, stderr)
    try:
        if not server.wait_until(lambda: server.get("/healthz")[0] == 200):
            raise RuntimeError(f"server did not start: {stderr.read_text()}")
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
