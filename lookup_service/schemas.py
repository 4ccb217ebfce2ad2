"""Pydantic request and response bodies of the lookup service; `/openapi.json` is generated from them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_ID = 2**31 - 1  # ids are int32 in the output contract


class UserPath(BaseModel):
    user_id: int = Field(ge=1, le=MAX_ID, description="Raw MovieLens user id.")


class MoviePath(BaseModel):
    movie_id: int = Field(ge=1, le=MAX_ID, description="Raw MovieLens movie id.")


class RecommendationsQuery(BaseModel):
    model_config = ConfigDict(frozen=True)  # validated once per distinct query string and shared

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
