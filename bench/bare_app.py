"""Baseline for bench/load_test.py: a bare Flask endpoint returning a precomputed JSON body from a dict.

The bodies are the lookup service's own n=10 responses for every user of the run, rendered once at start
(`create_bare_app()` reads `NCF_OUTPUT_DIR` like the service), and the response is built by the service's
own `json_response` with the same `X-Run-Id` header, so both endpoints send the same bytes (headers
included) and write the same access-log lines: the comparison isolates what the service does to find and
validate a body.
"""

from __future__ import annotations

from flask import Flask, Response

from batch.contract import read_latest, run_dir
from lookup_service.api import json_response
from lookup_service.schemas import RecommendationsResponse
from lookup_service.settings import ServiceSettings
from lookup_service.store import RankedList, RunStore, load_run


def ranked_items(store: RunStore, ranked: RankedList, n: int) -> list[dict]:
    """The first `n` entries of a ranked list as `RecommendedMovie` fields."""
    pairs = zip(ranked.movie_pos[:n].tolist(), ranked.scores[:n].tolist(), strict=True)
    return [{**store.movies[p], "rank": rank, "score": s} for rank, (p, s) in enumerate(pairs, start=1)]


def create_bare_app() -> Flask:
    settings = ServiceSettings()
    store = load_run(run_dir(settings.output_dir, read_latest(settings.output_dir)))
    bodies: dict[int, bytes] = {}
    for user_id in store.users.ids.tolist():
        body = RecommendationsResponse(
            user_id=user_id,
            run_id=store.run_id,
            source="model",
            recommendations=ranked_items(store, store.for_user(user_id), 10),
        )
        bodies[user_id] = body.model_dump_json().encode()
    run_id = store.run_id
    app = Flask(__name__)

    @app.get("/bare/users/<int:user_id>/recommendations")
    def bare(user_id: int) -> Response:
        return json_response(bodies[user_id], run_id=run_id)

    return app
