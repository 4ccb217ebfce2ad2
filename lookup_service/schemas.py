"""Pydantic request and response bodies of the lookup service; `/openapi.json` is generated from them."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_ID = 2**31 - 1  # ids are int32 in the output contract
MAX_LIKED = 100
MAX_EXCLUDED = 1000
MovieId = Annotated[int, Field(ge=1, le=MAX_ID)]


class UserPath(BaseModel):
    user_id: int = Field(ge=1, le=MAX_ID, description="Raw MovieLens user id.")


class MoviePath(BaseModel):
    movie_id: int = Field(ge=1, le=MAX_ID, description="Raw MovieLens movie id.")


class ListRules(BaseModel):
    """Request-time rules, applied within the run's precomputed lists (`complete: false` in the response
    when fewer than n movies pass them)."""

    model_config = ConfigDict(frozen=True)  # validated once per distinct query string and shared

    genre: str | None = Field(
        None, min_length=1, max_length=64, description="Keep only movies of this genre (one of the run's)."
    )
    exclude_genre: str | None = Field(
        None, min_length=1, max_length=64, description="Drop movies of this genre (one of the run's)."
    )
    exclude: list[MovieId] = Field(
        default_factory=list, max_length=MAX_EXCLUDED, description="Movie ids never to return."
    )
    year_from: int | None = Field(
        None,
        ge=0,
        le=9999,
        description="Keep movies released in or after this year (drops movies without one).",
    )
    year_to: int | None = Field(
        None,
        ge=0,
        le=9999,
        description="Keep movies released in or before this year (drops movies without one).",
    )


class RecommendationsQuery(ListRules):
    n: int | None = Field(
        None, ge=1, description="How many to return, 1..N of the run (default: the service's)."
    )
    fallback: Literal["popular", "none"] = Field(
        "popular", description="For an unknown user: the popularity list (`popular`) or a 404 (`none`)."
    )


class Movie(BaseModel):
    movie_id: int
    title: str
    year: int | None = Field(description="Release year parsed from the title; null when absent.")
    genres: list[str]


class MovieResponse(Movie):
    run_id: str


class RecommendedMovie(Movie):
    rank: int = Field(ge=1, description="1 = best.")
    score: float = Field(description="Model score (or the popularity score for `source: popular`).")


class RecommendationsResponse(BaseModel):
    user_id: int
    run_id: str
    source: Literal["model", "popular"]
    recommendations: list[RecommendedMovie]
    complete: bool = Field(True, description="False when fewer than n movies passed the request's rules.")


class SimilarQuery(ListRules):
    n: int | None = Field(
        None, ge=1, description="How many to return, 1..K of the run (default: the service's, at most K)."
    )


class SimilarMoviesResponse(BaseModel):
    movie_id: int
    run_id: str
    similar: list[RecommendedMovie] = Field(
        description="Most similar first, never the movie itself; score: cosine similarity."
    )
    complete: bool = Field(True, description="False when fewer than n similar movies passed the rules.")


class NewUserRequest(ListRules):
    """A new user described by movies they liked; answered from the run's similar-movie lists."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    liked: list[MovieId] = Field(max_length=MAX_LIKED, description="Movie ids the user liked (at most 100).")
    n: int | None = Field(
        None, ge=1, description="How many to return, 1..N of the run (default: the service's)."
    )


class NewUserResponse(BaseModel):
    run_id: str
    source: Literal["similar", "popular"] = Field(
        description="similar: at least one movie came from the liked movies' neighbours; popular: none did."
    )
    unknown_liked: list[int] = Field(description="Liked ids the run does not know (ignored).")
    recommendations: list[RecommendedMovie] = Field(
        description="score: the sum of the movie's similarity to each liked movie; 0 for popular movies "
        "that fill the list."
    )
    complete: bool = Field(True, description="False when fewer than n movies passed the rules.")


class HistoryMovie(Movie):
    rank: int = Field(ge=1, description="1 = the newest rating.")
    timestamp: int = Field(description="When the user rated it, seconds since the epoch (UTC).")


class HistoryResponse(BaseModel):
    user_id: int
    run_id: str
    history: list[HistoryMovie]


class ModelResponse(BaseModel):
    run_id: str
    created_at: str
    engine: str | None = Field(None, description="NCF engine (keras or numpy); null for other models")
    code_version: str
    top_n: int
    config: dict[str, Any] = Field(description="The model's configuration (manifest `model_config`).")
    dataset: dict[str, Any]
    counts: dict[str, int]
    metrics: dict[str, Any] = Field(description="metrics.json of the run.")
    genres: list[str] = Field(description="The genres of the run's movies (what `genre=` accepts).")


class HealthResponse(BaseModel):
    status: Literal["ok"]


class ReadyResponse(BaseModel):
    status: Literal["ready", "not_ready"]
    run_id: str | None = Field(description="The run being served.")
    latest_run_id: str | None = Field(description="What LATEST named at the last check.")
    refused_run_id: str | None = Field(description="A run that failed validation and is not served.")
    reason: str | None = Field(
        description="Why a run was refused, or why nothing is served, in general terms (no paths or file "
        "names; the service log has the details)."
    )


class ErrorDetail(BaseModel):
    code: str = Field(description="Machine-readable: not_found, invalid_parameter, not_ready, ...")
    message: str


class ErrorResponse(BaseModel):
    error: ErrorDetail
