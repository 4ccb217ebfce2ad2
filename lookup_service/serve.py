"""`ncf-serve`: run the lookup service under gunicorn with `lookup_service/gunicorn_conf.py`.

Extra arguments go to gunicorn (e.g. `ncf-serve --bind 127.0.0.1:8080 --workers 2`). The process execs
gunicorn, so signals (SIGTERM for a graceful stop, SIGHUP to reload workers) reach it directly.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

CONFIG_FILE = Path(__file__).with_name("gunicorn_conf.py")


def gunicorn_argv(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "gunicorn", "--config", str(CONFIG_FILE), *args]


def main(argv: list[str] | None = None) -> None:
    argv = gunicorn_argv(sys.argv[1:] if argv is None else argv)
    os.execv(argv[0], argv)


if __name__ == "__main__":
    main()
