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
    """One response body. `movie_pos`: (n,) int positions into `fragments`; `scores`: (n,) finite float64."""
    n = len(movie_pos)
    items = "},".join(
        [
            f"{fragment}{rank_key}{score!r}"
            for fragment, rank_key, score in zip(
                map(fragments.__getitem__, movie_pos.tolist()),
                RANK_KEYS[1 : n + 1] if n < len(RANK_KEYS) else map(_rank_key, range(1, n + 1)),
                scores.tolist(),
                strict=True,
            )
        ]
    )
    return (
        f'{{"user_id":{user_id},"run_id":{json.dumps(run_id)},"source":"{source}",'
        f'"recommendations":[{items}{"}" if n else ""}]}}'
    )


def _rank_key(rank: int) -> str:
    return f'"rank":{rank},"score":'


RANK_KEYS = [_rank_key(rank) for rank in range(1001)]


def short_float32(scores: np.ndarray) -> np.ndarray:
    """float32 scores as float64 holding their 9-significant-digit decimal (which maps back to the same
    float32), so `repr` in a response is short and quick: 0.850624204 instead of 0.8506242036819458.
    Exact for every value; short for magnitudes of about 1e-6..1e6 (beyond, the scaling is inexact and a
    value may keep its long form).

    Args:
        scores: (n,) finite float32. Returns (n,) float64.
    """
    exact = scores.astype(np.float64)
    nonzero = exact != 0
    factor = 10.0 ** (8 - np.floor(np.log10(np.abs(exact[nonzero]))))
    short = exact.copy()
    short[nonzero] = np.rint(exact[nonzero] * factor) / factor
    return np.where(short.astype(np.float32) == scores, short, exact)
