"""`RecommenderAPI`: the routes of the lookup service as a Flask blueprint, each declared once as an
`openapi.Route` (so `/openapi.json` documents exactly what is served), with pydantic-validated parameters."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from flask import Blueprint, Response, request
from pydantic import BaseModel, ValidationError

from batch.serving_arrays import short_float32
from lookup_service.errors import ApiError, validation_message
from lookup_service.openapi import Route
from lookup_service.reloader import RunHolder
from lookup_service.render import new_user_json, recommendations_json, similar_json
from lookup_service.rules import Rules, fold_in
from lookup_service.schemas import (
    ErrorResponse,
    HealthResponse,
    HistoryMovie,
    HistoryResponse,
    ListRules,
    ModelResponse,
    MoviePath,
    MovieResponse,
    NewUserRequest,
    NewUserResponse,
    ReadyResponse,
    RecommendationsQuery,
    RecommendationsResponse,
    SimilarMoviesResponse,
    SimilarQuery,
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
        "/v1/users/<user_id>/history",
        "history",
        "The newest movies the user rated (as many as the run keeps); 404 for a user the run lacks",
        "v1",
        {200: HistoryResponse, **ERRORS},
        path=UserPath,
    ),
    Route(
        "/v1/recommendations",
        "new_user",
        "Top-n movies for a new user from a few liked movies, without retraining: the sum of the liked "
        "movies' similar-movie scores; popular movies when nothing is known",
        "v1",
        {200: NewUserResponse, 422: ErrorResponse, 503: ErrorResponse},
        method="POST",
        body=NewUserRequest,
    ),
    Route(
        "/v1/movies/<movie_id>/similar",
        "similar",
        "The movies most similar to one movie (never itself), with request-time rules",
        "v1",
        {200: SimilarMoviesResponse, **ERRORS},
        path=MoviePath,
        query=SimilarQuery,
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
                route.rule, route.operation_id, _validating(view, route), methods=[route.method]
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
        n = _n(query.n, self.default_n, store.top_n, store.run_id)
        rules = _rules(store, query)
        if rules.active:
            return self._filtered_recommendations(store, path.user_id, n, rules, query.fallback)
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

    def _filtered_recommendations(
        self, store: RunStore, user_id: int, n: int, rules: Rules, fallback: str
    ) -> Response:
        """The first n movies of the user's candidate list (`candidates` deep) that pass the rules."""
        ranked, source = store.for_user(user_id), "model"
        if ranked is None:
            if fallback == "none":
                raise ApiError(404, "not_found", f"user {user_id} is not in run {store.run_id}", store.run_id)
            ranked, source = store.popular, "popular"
        keep = np.flatnonzero(rules.allowed(store.facts, ranked.movie_pos))[:n]
        body = recommendations_json(
            user_id,
            store.run_id,
            source,
            store.movie_fragments,
            ranked.movie_pos[keep],
            ranked.scores[keep],
            complete=len(keep) == n,
        )
        return json_response(body, run_id=store.run_id)

    def similar(self, path: MoviePath, query: SimilarQuery) -> Response:
        """The movies most similar to one movie, best first, never the movie itself."""
        store = self._store()
        pos = store.movie_index.position(path.movie_id)
        if pos < 0:
            raise ApiError(
                404, "not_found", f"movie {path.movie_id} is not in run {store.run_id}", store.run_id
            )
        if store.similar_k == 0:
            raise ApiError(404, "not_found", f"run {store.run_id} has no similar movies", store.run_id)
        n = _n(query.n, min(self.default_n, store.similar_k), store.similar_k, store.run_id)
        movie_pos, scores = store.similar.of(pos)
        keep = np.flatnonzero(_rules(store, query).allowed(store.facts, movie_pos))[:n]
        body = similar_json(
            path.movie_id,
            store.run_id,
            store.movie_fragments,
            movie_pos[keep],
            scores[keep],
            complete=len(keep) == n,
        )
        return json_response(body, run_id=store.run_id)

    def new_user(self, body: NewUserRequest) -> Response:
        """Top-n for a new user from liked movies (`rules.fold_in` over the similar-movie lists)."""
        store = self._store()
        n = _n(body.n, min(self.default_n, store.top_n), store.top_n, store.run_id)
        rules = _rules(store, body)
        liked_ids = np.asarray(body.liked, dtype=np.int64)
        liked = store.movie_index.positions(liked_ids)
        pos, scores, from_lists = fold_in(
            store.similar,
            store.popular.movie_pos,
            store.facts.popular_rank,
            liked[liked >= 0],
            n,
            lambda candidates: rules.allowed(store.facts, candidates),
        )
        body = new_user_json(
            store.run_id,
            "similar" if from_lists else "popular",
            sorted(set(liked_ids[liked < 0].tolist())),
            store.movie_fragments,
            pos,
            short_float32(scores.astype(np.float32)),
            complete=len(pos) == n,
        )
        return json_response(body, run_id=store.run_id)

    def history(self, path: UserPath) -> Response:
        """The newest movies the user rated, newest first."""
        store = self._store()
        found = store.history.of(path.user_id) if store.history is not None else None
        if found is None:
            raise ApiError(
                404, "not_found", f"user {path.user_id} has no history in run {store.run_id}", store.run_id
            )
        movie_pos, times = found
        body = HistoryResponse(
            user_id=path.user_id,
            run_id=store.run_id,
            history=[
                HistoryMovie(**store.movies[p], rank=rank, timestamp=t)
                for rank, (p, t) in enumerate(zip(movie_pos.tolist(), times.tolist(), strict=True), start=1)
            ],
        )
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
            genres=sorted(store.facts.genres),
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


def _n(requested: int | None, default: int, limit: int, run_id: str) -> int:
    """The n of a request: `requested` (422 above `limit`), else `default`."""
    n = requested if requested is not None else default
    if n > limit:
        raise ApiError(422, "invalid_parameter", f"n must be between 1 and {limit}, got {n}", run_id)
    return n


def _rules(store: RunStore, given: ListRules) -> Rules:
    """The request's rules against the served run: genres by their row, excluded ids by position (ids the
    run lacks cannot be returned anyway); 422 naming the field for a genre the run does not have."""
    genres = {}
    for name in ("genre", "exclude_genre"):
        value = getattr(given, name)
        if value is not None:
            if value not in store.facts.genres:
                known = ", ".join(sorted(store.facts.genres))
                raise ApiError(
                    422,
                    "invalid_parameter",
                    f"{name}: unknown genre {value!r} (known: {known})",
                    store.run_id,
                )
            genres[name] = store.facts.genres[value]
    exclude = None
    if given.exclude:
        positions = store.movie_index.positions(np.asarray(given.exclude, dtype=np.int64))
        exclude = positions[positions >= 0]
    return Rules(genres.get("genre"), genres.get("exclude_genre"), exclude, given.year_from, given.year_to)


def _validating(view: Callable[..., Response], route: Route) -> Callable[..., Response]:
    """A Flask view that validates the path and query parameters and the JSON body with the route's
    pydantic models (422 naming the field on failure) and calls `view(path=..., query=..., body=...)`."""
    queries = _QueryMemo(route.query) if route.query is not None else None

    def validated_view(**path_args: str) -> Response:
        kwargs = {}
        if route.path is not None:
            kwargs["path"] = _validated(route.path, path_args)
        if queries is not None:
            kwargs["query"] = queries.validated()
        if route.body is not None:
            data = request.get_json(silent=True)
            if not isinstance(data, dict):
                raise ApiError(422, "invalid_parameter", "body: expected a JSON object")
            kwargs["body"] = _validated(route.body, data)
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
        self._lists = {
            name
            for name, field in model.model_fields.items()
            if getattr(field.annotation, "__origin__", None) is list
        }

    def validated(self) -> BaseModel:
        raw = request.query_string
        query = self._memo.get(raw)
        if query is None:
            args = request.args
            data = {key: args.getlist(key) if key in self._lists else args[key] for key in args}
            query = _validated(self.model, data)
            if len(self._memo) >= QUERY_MEMO_SIZE:
                self._memo.clear()
            self._memo[raw] = query
        return query


def _validated(model: type[BaseModel], data: dict[str, Any]) -> BaseModel:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ApiError(422, "invalid_parameter", validation_message(exc)) from None
