"""`create_app(settings)`: the Flask application of the lookup service."""

from __future__ import annotations

import logging
from importlib import resources

import pyarrow as pa
from flask import Flask, Response, jsonify

from lookup_service.api import ROUTES, RecommenderAPI
from lookup_service.errors import register_error_handlers
from lookup_service.openapi import openapi_document
from lookup_service.reloader import Reloader, RunHolder
from lookup_service.settings import ServiceSettings

logger = logging.getLogger(__name__)

TITLE = "NCF recommender lookup service"
API_VERSION = "1"


def create_app(settings: ServiceSettings | None = None, start_reloader: bool = True) -> Flask:
    """Build the app: load the run LATEST names (if any), start polling LATEST, register the routes.

    `settings` defaults to `ServiceSettings()` read from the environment (`NCF_OUTPUT_DIR`, ...).
    `start_reloader=False` leaves polling to the caller: gunicorn builds the app once before forking and
    starts a reloader in each worker (`gunicorn_conf.post_worker_init`), as threads do not survive a fork.
    The app's `extensions["ncf"]` holds the `RunHolder` and the `Reloader` (None when polling is off).
    """
    settings = settings or ServiceSettings()
    # The service reads a few tables per run; Arrow's default allocator (mimalloc) would keep ~30 MB of
    # freed read buffers in every process, the system allocator returns them.
    pa.set_memory_pool(pa.system_memory_pool())
    app = Flask(__name__)
    holder = RunHolder(settings.output_dir, int(settings.body_cache_mb * 2**20))
    holder.check()
    reloader = None
    if settings.reload_interval_seconds > 0:
        reloader = Reloader(holder, settings.reload_interval_seconds)
        if start_reloader:
            reloader.start()
    app.extensions["ncf"] = {"holder": holder, "reloader": reloader}

    app.register_blueprint(RecommenderAPI(holder, settings.default_n).blueprint)
    register_error_handlers(app)
    page = resources.files("lookup_service").joinpath("static/index.html").read_text(encoding="utf-8")
    app.add_url_rule("/", "index", lambda: Response(page, mimetype="text/html"))
    document = openapi_document(ROUTES, TITLE, API_VERSION)
    app.add_url_rule("/openapi.json", "openapi_json", lambda: jsonify(document))

    logger.info(
        "lookup service ready=%s serving %s from %s, polling every %ss",
        holder.store is not None,
        holder.store.run_id if holder.store else None,
        settings.output_dir,
        settings.reload_interval_seconds,
    )
    return app
