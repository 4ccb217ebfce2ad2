"""`RecommenderAPI`: the routes of the lookup service as a Flask blueprint, each declared once as an
`openapi.Route` (so `/openapi.json` documents exactly what is served), with pydantic-validated parameters."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, request
from pydantic import BaseModel, ValidationError

from lookup_service.errors import ApiError, validation_message
from lookup_service.openapi import Route
from lookup_service.reloader import RunHolder
from lookup_service.render import recommendations_json
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
from lookup_service.store import RunStore

RUN_ID_HEADER = "X-Run-Id"
JSON_CONTENT_TYPE = "application/json"
QUERY_MEMO_SIZE = 256
ERRORS = {404: ErrorResponse, 422: ErrorResponse, 503: ErrorResponse}
ROUTES = [
    Route(
        "/v1/users/<user_id>/recommendations",
        "recommendations",
        "Top-n movies for a user; the popularity list (`source: popular`) for a user the run lacks",
        "v1",
        {200: RecommendationsResponse, **ERRORS},
        path=UserPath,
        query=RecommendationsQuery,
    ),
    Route(
        "/v1/movies/<movie_id>",
        "movie",
        "Metadata of one movie of the served run",
        "v1",
        {200: MovieResponse, **ERRORS},
        path=MoviePath,
    ),
    Route(
        "/v1/model",
        "model",
        "Engine, configuration, data set, counts and metrics of the served run",
        "v1",
        {200: ModelResponse, 503: ErrorResponse},
    ),
    Route("/healthz", "healthz", "The process is alive", "operations", {200: HealthResponse}),
    Route(
        "/readyz",
        "readyz",
        "200 once a run is loaded (also while a newer run is refused), 503 before; says which, and why in "
        "general terms (the details are in the service log)",
        "operations",
        {200: ReadyResponse, 503: ReadyResponse},
    ),
]


def json_response(body: BaseModel | str | bytes, status: int = 200, run_id: str | None = None) -> Response:
    """A JSON response (a model, or an already encoded body) with the run id header when one is given."""
    data = body if isinstance(body, str | bytes) else body.model_dump_json()
    response = Response(data, status=status, content_type=JSON_CONTENT_TYPE)  # no mimetype parsing
    if run_id:
        response.headers.add(RUN_ID_HEADER, run_id)
    return response


class RecommenderAPI:
    """The service's endpoints over one `RunHolder`; `blueprint` is what the app registers."""

    def __init__(self, holder: RunHolder, default_n: int) -> None:
        self.holder = holder
        self.default_n = default_n
        self.blueprint = Blueprint("recommender", __name__)
        for route in ROUTES:
            view = getattr(self, route.operation_id)
            self.blueprint.add_url_rule(
                route.rule, route.operation_id, _validating(view, route), methods=["GET"]
            )

    def _store(self) -> RunStore:
        """The store for this request (read once, so a concurrent swap cannot change it half-way)."""
        store = self.holder.store
        if store is None:
            raise ApiError(503, "not_ready", f"no run loaded: {self.holder.status.reason}")
        return store

    def recommendations(self, path: UserPath, query: RecommendationsQuery) -> Response:
        """Top-n movies for a user; the popularity list (`source: popular`) for users the run lacks.

        A known user's body is rendered once per (user, n) and kept in the store's `BodyCache`."""
        store = self._store()
        n = query.n if query.n is not None else min(self.default_n, store.top_n)
        if n > store.top_n:
            raise ApiError(
                422, "invalid_parameter", f"n must be between 1 and {store.top_n}, got {n}", store.run_id
            )
        key = (path.user_id, n)
        body = store.bodies.get(key)  # only known users' bodies are cached: `fallback` cannot matter
        if body is None:
            ranked, source = store.for_user(path.user_id), "model"
            if ranked is None:
                if query.fallback == "none":
                    raise ApiError(
                        404, "not_found", f"user {path.user_id} is not in run {store.run_id}", store.run_id
                    )
                ranked, source = store.popular, "popular"
            body = recommendations_json(
                path.user_id,
                store.run_id,
                source,
                store.movie_fragments,
                ranked.movie_pos[:n],
                ranked.scores[:n],
            )
            if source == "model":
                store.bodies.put(key, body)
        return json_response(body, run_id=store.run_id)

    def movie(self, path: MoviePath) -> Response:
        """Metadata of one movie of the served run."""
        store = self._store()
        movie = store.movie(path.movie_id)
        if movie is None:
            raise ApiError(
                404, "not_found", f"movie {path.movie_id} is not in run {store.run_id}", store.run_id
            )
        return json_response(
            MovieResponse.model_validate({**movie, "run_id": store.run_id}), run_id=store.run_id
        )

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
        return json_response(body, run_id=m.run_id)

    def healthz(self) -> Response:
        """The process is alive."""
        return json_response(HealthResponse(status="ok"))

    def readyz(self) -> Response:
        """200 once a run is loaded (also while a newer run is refused), 503 before; says which, and why in
        general terms (the details are in the service log)."""
        store, status = self.holder.store, self.holder.status
        body = ReadyResponse(
            status="ready" if store else "not_ready",
            run_id=store.run_id if store else None,
            latest_run_id=status.latest_run_id,
            refused_run_id=status.refused_run_id,
            reason=status.reason,
        )
        return json_response(body, 200 if store else 503, run_id=store.run_id if store else None)


def _validating(view: Callable[..., Response], route: Route) -> Callable[..., Response]:
    """A Flask view that validates the path and query parameters with the route's pydantic models (422 on
    failure) and calls `view(path=..., query=...)`."""
    queries = _QueryMemo(route.query) if route.query is not None else None

    def validated_view(**path_args: str) -> Response:
        kwargs = {}
        if route.path is not None:
            kwargs["path"] = _validated(route.path, path_args)
        if queries is not None:
            kwargs["query"] = queries.validated()
        return view(**kwargs)

    validated_view.__name__ = route.operation_id
    validated_view.__doc__ = view.__doc__
    return validated_view


class _QueryMemo:
    """The validated query model of the current request, memoised by the raw query string.

    Clients send the same few query strings (`n=10`) over and over; parsing and validating one costs more
    than the rest of a cached lookup. A miss validates `request.args` as before (an invalid query raises
    and is never memoised); at most `QUERY_MEMO_SIZE` strings are kept (all forgotten when full). The
    memoised models are frozen, so sharing one between requests is safe.
    """

    def __init__(self, model: type[BaseModel]) -> None:
        self.model = model
        self._memo: dict[bytes, BaseModel] = {}

    def validated(self) -> BaseModel:
        raw = request.query_string
        query = self._memo.get(raw)
        if query is None:
            query = _validated(self.model, request.args.to_dict())
            if len(self._memo) >= QUERY_MEMO_SIZE:
                self._memo.clear()
            self._memo[raw] = query
        return query


def _validated(model: type[BaseModel], data: dict[str, Any]) -> BaseModel:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ApiError(422, "invalid_parameter", validation_message(exc)) from None
