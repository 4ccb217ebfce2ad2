"""The service image's health check (`deploy/healthcheck.py`) against a real local HTTP server."""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "deploy" / "healthcheck.py"
spec = importlib.util.spec_from_file_location("ncf_healthcheck", SCRIPT)
healthcheck = importlib.util.module_from_spec(spec)
spec.loader.exec_module(healthcheck)


class Handler(BaseHTTPRequestHandler):
    """Answers GET /healthz with the server's `status`, anything else with 404."""

    def do_GET(self):
        code = self.server.status if self.path == "/healthz" else 404
        self.send_response(code)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def server() -> Iterator[ThreadingHTTPServer]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.status = 200
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.parametrize(
    ("bind", "port"), [("0.0.0.0:8000", 8000), ("[::]:9001", 9001), (":80", 80), ("127.0.0.1:18080", 18080)]
)
def test_port_of_bind(bind, port):
    assert healthcheck.port_of(bind) == port


@pytest.mark.parametrize("bind", ["unix:/run/ncf.sock", "0.0.0.0", "host:http"])
def test_port_of_rejects_binds_without_a_tcp_port(bind):
    with pytest.raises(ValueError, match="no TCP port"):
        healthcheck.port_of(bind)


def test_healthy_when_healthz_answers_200(server, monkeypatch):
    monkeypatch.setenv("NCF_BIND", f"0.0.0.0:{server.server_address[1]}")
    assert healthcheck.main() == 0


def test_unhealthy_on_error_status(server, monkeypatch):
    server.status = 503
    monkeypatch.setenv("NCF_BIND", f"0.0.0.0:{server.server_address[1]}")
    assert healthcheck.main() == 1


def test_unhealthy_when_nothing_listens(server, monkeypatch):
    port = server.server_address[1]
    server.shutdown()
    server.server_close()
    monkeypatch.setenv("NCF_BIND", f"0.0.0.0:{port}")
    assert healthcheck.main() == 1
