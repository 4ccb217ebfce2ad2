"""`RecommenderAPI`: the routes of the lookup service, as a flask-openapi3 blueprint documented by the
pydantic models in `lookup_service.schemas`."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flask import Response, g
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel

from lookup_service.errors import ApiError
from lookup_service.reloader import RunHolder
from lookup_service.schemas import (
    ErrorResponse,
    HealthResponse,
    ModelResponse,
    MoviePath,
    MovieResponse,
    ReadyResponse,
    RecommendationsQuery,
    RecommendationsResponse,
    UserPath,
)
from lookup_service.store import RankedList, RunStore

ERRORS = {404: ErrorResponse, 422: ErrorResponse, 503: ErrorResponse}


def json_response(body: BaseModel, status: int = 200) -> Response:
    return Response(body.model_dump_json(), status=status, mimetype="application/json")


class RecommenderAPI:
    """The service's endpoints over one `RunHolder`; `blueprint` is what the app registers."""

    def __init__(self, holder: RunHolder, default_n: int) -> None:
        self.holder = holder
        self.default_n = default_n
        bp = APIBlueprint("recommender", __name__)
        v1 = [Tag(name="v1", description="Recommendations and metadata of the served run")]
        ops = [Tag(name="operations", description="Liveness and readiness")]
        routes = [
            (
                "/v1/users/<user_id>/recommendations",
                self.recommendations,
                v1,
                {200: RecommendationsResponse, **ERRORS},
            ),
            ("/v1/movies/<movie_id>", self.movie, v1, {200: MovieResponse, **ERRORS}),
            ("/v1/model", self.model, v1, {200: ModelResponse, 503: ErrorResponse}),
            ("/healthz", self.healthz, ops, {200: HealthResponse}),
            ("/readyz", self.readyz, ops, {200: ReadyResponse, 503: ReadyResponse}),
        ]
        for rule, method, tags, responses in routes:
            bp.get(rule, tags=tags, responses=responses)(_as_function(method))
        self.blueprint = bp

    def _store(self) -> RunStore:
        """The store for this request (read once, so a concurrent swap cannot change it half-way)."""
        store = self.holder.store
        if store is None:
            raise ApiError(503, "not_ready", f"no run loaded: {self.holder.status.reason}")
        g.run_id = store.run_id
        return store

    def recommendations(self, path: UserPath, query: RecommendationsQuery) -> Response:
        """Top-n movies for a user; the popularity list (`source: popular`) for users the run lacks."""
        store = self._store()
        n = query.n if query.n is not None else min(self.default_n, store.top_n)
        if n > store.top_n:
            raise ApiError(422, "invalid_parameter", f"n must be between 1 and {store.top_n}, got {n}")
        ranked, source = store.for_user(path.user_id), "model"
        if ranked is None:
            if query.fallback == "none":
                raise ApiError(404, "not_found", f"user {path.user_id} is not in run {store.run_id}")
            ranked, source = store.popular, "popular"
        body = {
            "user_id": path.user_id,
            "run_id": store.run_id,
            "source": source,
            "recommendations": _items(store, ranked, n),
        }
        return json_response(RecommendationsResponse.model_validate(body))

    def movie(self, path: MoviePath) -> Response:
        """Metadata of one movie of the served run."""
        store = self._store()
        movie = store.movie(path.movie_id)
        if movie is None:
            raise ApiError(404, "not_found", f"movie {path.movie_id} is not in run {store.run_id}")
        return json_response(MovieResponse.model_validate({**movie, "run_id": store.run_id}))

    def model(self) -> Response:
        """What produced the served run: engine, configuration, data set, counts and evaluation metrics."""
        store = self._store()
        m = store.manifest
        body = ModelResponse(
            run_id=m.run_id,
            created_at=m.created_at,
            engine=m.engine,
            code_version=m.code_version,
            top_n=m.top_n,
            config=m.model_config_,
            dataset=m.dataset,
            counts=m.counts,
            metrics=store.metrics,
        )
        return json_response(body)

    def healthz(self) -> Response:
        """The process is alive."""
        return json_response(HealthResponse(status="ok"))

    def readyz(self) -> Response:
        """200 once a run is loaded (also while a newer run is refused), 503 before; says which and why."""
        store, status = self.holder.store, self.holder.status
        body = ReadyResponse(
            status="ready" if store else "not_ready",
            run_id=store.run_id if store else None,
            latest_run_id=status.latest_run_id,
            refused_run_id=status.refused_run_id,
            reason=status.reason,
        )
        return json_response(body, 200 if store else 503)


def _as_function(method: Callable[..., Response]) -> Callable[..., Response]:
    """flask-openapi3 annotates view functions, which a bound method does not allow: wrap it."""

    @functools.wraps(method)
    def view(**kwargs: Any) -> Response:
        return method(**kwargs)

    return view


def _items(store: RunStore, ranked: RankedList, n: int) -> list[dict]:
    movie_pos = ranked.movie_pos[:n].tolist()
    scores = ranked.scores[:n].tolist()
    return [
        {**store.movies[p], "rank": rank, "score": s}
        for rank, (p, s) in enumerate(zip(movie_pos, scores, strict=True), start=1)
    ]
