"""JSON bodies of `RecommendationsResponse` rendered from per-movie fragments made once per run.

The hot endpoint would spend most of its time building and serialising ~10 pydantic objects per request;
instead each movie's `{"movie_id":..,"title":..,"year":..,"genres":[..],` prefix is encoded once at load
and a response is a string join. The shape is exactly `RecommendationsResponse` (field order included);
tests check it against the pydantic model for every user of a run.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np


def movie_fragment(movie: dict[str, Any]) -> str:
    """`{"movie_id":1,"title":"..","year":1995,"genres":[..],` (open: rank and score follow)."""
    return json.dumps(movie, ensure_ascii=False, separators=(",", ":"))[:-1] + ","


def recommendations_json(
    user_id: int, run_id: str, source: str, fragments: list[str], movie_pos: np.ndarray, scores: np.ndarray
) -> str:
    """One response body. `movie_pos`: (n,) int positions into `fragments`; `scores`: (n,) finite float32."""
    items = ",".join(
        f'{fragments[p]}"rank":{rank},"score":{score!r}}}'
        for rank, (p, score) in enumerate(zip(movie_pos.tolist(), scores.tolist(), strict=True), start=1)
    )
    return (
        f'{{"user_id":{user_id},"run_id":{json.dumps(run_id)},"source":"{source}",'
        f'"recommendations":[{items}]}}'
    )
