"""Container health check of the lookup service: exit 0 when GET /healthz on the local port answers 200.

Standard library only (it runs in the service image as `ncf-healthcheck` and from the Dockerfile's
HEALTHCHECK). The port comes from `NCF_BIND` (`host:port`, as gunicorn is told), so the check follows
the port when it is changed at run time (`-e NCF_BIND=0.0.0.0:9000`).
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

DEFAULT_BIND = "0.0.0.0:8000"


def port_of(bind: str) -> int:
    """The TCP port of a gunicorn bind string (`0.0.0.0:8000`, `[::]:8000`, `:8000`).

    Raises ValueError when there is no numeric port (e.g. `unix:/run/ncf.sock`).
    """
    host, sep, port = bind.rpartition(":")
    if not sep or not port.isdigit() or host == "unix":
        raise ValueError(f"no TCP port in bind {bind!r}")
    return int(port)


def healthy(url: str, timeout: float = 3.0) -> bool:
    """True when `url` answers HTTP 200 within `timeout` seconds."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def main() -> int:
    port = port_of(os.environ.get("NCF_BIND", DEFAULT_BIND).split(",")[0].strip())
    url = f"http://127.0.0.1:{port}/healthz"
    if healthy(url):
        return 0
    print(f"unhealthy: {url}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
