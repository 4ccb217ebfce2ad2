"""The real gunicorn server on a loopback port: hot reload across workers (runs with memory-mapped served
arrays, as the job writes them), refusal of a bad run, access logs, graceful shutdown with a request in
flight."""

from __future__ import annotations

import json
import re
import signal
import socket
import time

from live_server import live_server
from synthetic_runs import publish_corrupted, write_run

from batch.serving_arrays import SCORES
from lookup_service.reloader import FAILED_VERIFICATION

RECS = "/v1/users/3/recommendations?n=5"


def _all_served_by(server, run_id: str, requests: int = 12) -> bool:
    return all(server.get(RECS)[1]["X-Run-Id"] == run_id for _ in range(requests))


def _pids_logging(server, text: str) -> set[str]:
    """Worker (or master) pids whose log lines contain `text`."""
    return {
        m.group(1) for m in re.finditer(r"\[(\d+)\] \[\w+\] (.*)", server.logs()[1]) if text in m.group(2)
    }


def test_gunicorn_hot_reloads_new_runs_and_refuses_a_bad_one(output_dir, tmp_path):
    first = write_run(output_dir, seed=1, serving_arrays=True)
    with live_server(output_dir, tmp_path, workers=2) as server:
        status, headers, body = server.get(RECS)
        assert (status, headers["X-Run-Id"], body["run_id"]) == (200, first, first)

        second = write_run(output_dir, seed=2, serving_arrays=True)
        # each of the 2 workers polls LATEST and swaps in the new run on its own
        assert server.wait_until(
            lambda: len(_pids_logging(server, f"now serving run {second}")) == 2, timeout=30
        )
        assert _all_served_by(server, second)

        def flip(run):
            data = bytearray((run / SCORES).read_bytes())
            data[200] ^= 0xFF
            (run / SCORES).write_bytes(bytes(data))

        bad = publish_corrupted(output_dir, flip, seed=3, serving_arrays=True)
        refusal = f"refused run {bad}, still serving {second}"
        assert server.wait_until(lambda: len(_pids_logging(server, refusal)) == 2, timeout=30)
        assert _all_served_by(server, second)
        for _ in range(6):
            status, _, ready = server.get("/readyz")
            assert (status, ready["status"], ready["run_id"], ready["refused_run_id"]) == (
                200,
                "ready",
                second,
                bad,
            )
            assert ready["reason"] == FAILED_VERIFICATION
        assert len(_pids_logging(server, "sha256 does not match")) == 2
    access, errors = server.logs()
    assert f"run={second}" in access and '"GET /v1/users/3/recommendations?n=5 HTTP/1.1" 200' in access
    assert "Traceback" not in errors


def test_gunicorn_finishes_an_in_flight_request_on_sigterm(output_dir, tmp_path):
    run_id = write_run(output_dir)
    with live_server(output_dir, tmp_path, workers=1, threads=2) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(b"GET /v1/users/3/recommendations?n=4 HTTP/1.1\r\nHost: localhost\r\n")
            # One worker accepts connections in order: once a later request is answered (by the second
            # thread), this connection has been accepted and its first thread is reading the request.
            assert server.get("/healthz")[0] == 200
            server.process.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            sock.sendall(b"Connection: close\r\n\r\n")
            response = b""
            while chunk := sock.recv(65536):
                response += chunk
        head, _, body = response.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head
        assert json.loads(body)["run_id"] == run_id
        assert len(json.loads(body)["recommendations"]) == 4
        assert server.process.wait(timeout=15) == 0
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", server.port)) != 0
    assert "Shutting down" in server.logs()[1] or "Handling signal: term" in server.logs()[1]
