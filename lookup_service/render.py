"""JSON bodies of `RecommendationsResponse` rendered from per-movie fragments made once per run.

The hot endpoint would spend most of its time building and serialising ~10 pydantic objects per request;
instead each movie's `{"movie_id":..,"title":..,"year":..,"genres":[..],` prefix and each score's JSON
number are encoded once at load, and a response is a bytes join. The shape is exactly
`RecommendationsResponse` (field order included); tests check it byte for byte against the pydantic model
for every user of a run.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pydantic_core


def movie_fragment(movie: dict[str, Any]) -> bytes:
    """`{"movie_id":1,"title":"..","year":1995,"genres":[..],` (open: rank and score follow), UTF-8."""
    return (json.dumps(movie, ensure_ascii=False, separators=(",", ":"))[:-1] + ",").encode()


def score_texts(scores: np.ndarray) -> np.ndarray:
    """Each score's JSON number exactly as pydantic writes it (`pydantic_core.to_json`, the serializer of
    `RecommendationsResponse`; not Python's `repr`, which differs below 1e-4), made once per run:
    formatting floats is the costliest part of rendering a body.

    Args:
        scores: (n,) finite float64. Returns (n,) fixed-width bytes (NumPy `S`; `tolist()` gives `bytes`).
    """
    if len(scores) == 0:
        return np.empty(0, dtype="S1")
    return np.array(pydantic_core.to_json(scores.tolist())[1:-1].split(b","), dtype=np.bytes_)


def recommendations_json(
    user_id: int,
    run_id: str,
    source: str,
    fragments: list[bytes],
    movie_pos: np.ndarray,
    score_text: np.ndarray,
) -> bytes:
    """One UTF-8 response body. `movie_pos`: (n,) int positions into `fragments`; `score_text`: (n,) bytes
    from `score_texts`."""
    n = len(movie_pos)
    items = b"},".join(
        [
            b"%s%s%s" % item
            for item in zip(
                map(fragments.__getitem__, movie_pos.tolist()),
                RANK_KEYS[1 : n + 1] if n < len(RANK_KEYS) else map(_rank_key, range(1, n + 1)),
                score_text.tolist(),
                strict=True,
            )
        ]
    )
    head = b'{"user_id":%d,"run_id":%s,"source":"%s","recommendations":[' % (
        user_id,
        json.dumps(run_id).encode(),
        source.encode(),
    )
    return b"%s%s%s]}" % (head, items, b"}" if n else b"")


def _rank_key(rank: int) -> bytes:
    return b'"rank":%d,"score":' % rank


RANK_KEYS = [_rank_key(rank) for rank in range(1001)]


def short_float32(scores: np.ndarray) -> np.ndarray:
    """float32 scores as float64 holding their 9-significant-digit decimal (which maps back to the same
    float32), so its JSON number in a response is short: 0.850624204 instead of 0.8506242036819458.
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
