"""Gunicorn configuration of the lookup service (`ncf-serve` uses it; `gunicorn -c <this file>` too).

Values come from `ServerSettings` (environment `NCF_BIND`, `NCF_WORKERS`, ...). Choices:
- one worker process per core: a lookup is a few microseconds of NumPy plus Flask and JSON in Python, so it
  is CPU-bound under the GIL and only processes add throughput. The run's per-user arrays are memory-mapped
  (`serving/*.npy`), so all workers share one copy in the page cache; each worker holds the movies' JSON
  fragments and its body cache privately, and polls LATEST itself.
- `gthread` workers with 2 threads: for CPU work like sync workers, but they keep HTTP connections alive
  (no TCP handshake per request for clients and proxies), and a request read slowly from one client does
  not stall the worker (a sync worker, or a single thread, blocks until that request has arrived).
- `preload_app`: the master imports the app and loads the run once, then forks; on 2 shared cores this
  halves start-up CPU (two workers importing pyarrow, Flask and pydantic at once). Threads do not survive
  a fork, so `post_worker_init` re-checks LATEST (a worker forked later must not serve the master's older
  run) and starts the LATEST poller in each worker.
- on SIGTERM gunicorn stops accepting, lets in-flight requests finish for `graceful_timeout`, then exits.
"""

from lookup_service.settings import ServerSettings

_server = ServerSettings()

bind = _server.bind
workers = _server.workers
worker_class = "gthread"
threads = _server.threads
keepalive = 5
timeout = _server.timeout_seconds
graceful_timeout = _server.graceful_timeout_seconds
preload_app = True
control_socket_disable = True  # no gunicornc; several servers on one machine would share its path
wsgi_app = "lookup_service.app:create_app(start_reloader=False)"
accesslog = _server.access_log
loglevel = _server.log_level
access_log_format = '%(h)s "%(r)s" %(s)s %(B)s %(M)sms run=%({x-run-id}o)s'
# Only the root logger (the service's own `logging.getLogger(__name__)` loggers): gunicorn keeps its error
# and access loggers as set up from `loglevel` and `accesslog` above.
logconfig_dict = {"root": {"level": _server.log_level.upper(), "handlers": ["error_console"]}, "loggers": {}}


def post_worker_init(worker) -> None:
    """In each worker, after the fork: catch up with LATEST, then poll it on a thread of this process."""
    state = worker.wsgi.extensions.get("ncf")
    if state is None:  # another app served with this config (bench/bare_app.py)
        return
    state["holder"].check()
    if state["reloader"] is not None:
        state["reloader"].start()
