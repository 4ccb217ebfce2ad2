"""JSON bodies of `RecommendationsResponse` rendered from per-movie fragments made once per run.

The hot endpoint would spend most of its time building and serialising ~10 pydantic objects per request;
instead each movie's `{"movie_id":..,"title":..,"year":..,"genres":[..],` prefix is encoded once at load,
the n scores of a response (already short decimals, `short_float32`) are formatted in one call, and a
response is a bytes join. The shape is exactly
`RecommendationsResponse` (field order included); tests check it byte for byte against the pydantic model
for every user of a run.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pydantic_core

_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def movie_fragment(movie: dict[str, Any]) -> bytes:
    """`{"movie_id":1,"title":"..","year":1995,"genres":[..],` (open: rank and score follow), UTF-8."""
    return (_ENCODER.encode(movie)[:-1] + ",").encode()


def score_texts(scores: np.ndarray) -> list[bytes]:
    """Each score's JSON number exactly as pydantic writes it (`pydantic_core.to_json`, the serializer of
    `RecommendationsResponse`; not Python's `repr`, which differs below 1e-4), all in one call.

    Args:
        scores: (n,) finite float64.
    """
    if len(scores) == 0:
        return []
    return pydantic_core.to_json(scores.tolist())[1:-1].split(b",")


def recommendations_json(
    user_id: int,
    run_id: str,
    source: str,
    fragments: list[bytes],
    movie_pos: np.ndarray,
    scores: np.ndarray,
    complete: bool = True,
) -> bytes:
    """One UTF-8 `RecommendationsResponse` body. `movie_pos`: (n,) int positions into `fragments`;
    `scores`: (n,) float64 short decimals (`short_float32`)."""
    head = b'{"user_id":%d,"run_id":%s,"source":"%s","recommendations":[' % (
        user_id,
        json.dumps(run_id).encode(),
        source.encode(),
    )
    return b'%s%s],"complete":%s}' % (head, list_json(fragments, movie_pos, scores), _BOOL[complete])


def similar_json(
    movie_id: int,
    run_id: str,
    fragments: list[bytes],
    movie_pos: np.ndarray,
    scores: np.ndarray,
    complete: bool,
) -> bytes:
    """One UTF-8 `SimilarMoviesResponse` body."""
    head = b'{"movie_id":%d,"run_id":%s,"similar":[' % (movie_id, json.dumps(run_id).encode())
    return b'%s%s],"complete":%s}' % (head, list_json(fragments, movie_pos, scores), _BOOL[complete])


def new_user_json(
    run_id: str,
    source: str,
    unknown: list[int],
    fragments: list[bytes],
    movie_pos: np.ndarray,
    scores: np.ndarray,
    complete: bool,
) -> bytes:
    """One UTF-8 `NewUserResponse` body."""
    head = b'{"run_id":%s,"source":"%s","unknown_liked":[%s],"recommendations":[' % (
        json.dumps(run_id).encode(),
        source.encode(),
        b",".join(b"%d" % u for u in unknown),
    )
    return b'%s%s],"complete":%s}' % (head, list_json(fragments, movie_pos, scores), _BOOL[complete])


def list_json(fragments: list[bytes], movie_pos: np.ndarray, scores: np.ndarray) -> bytes:
    """The items of a ranked list, `{..movie..,"rank":1,"score":0.5},{..}`, without the brackets."""
    n = len(movie_pos)
    items = b"},".join(
        [
            b"%s%s%s" % item
            for item in zip(
                map(fragments.__getitem__, movie_pos.tolist()),
                RANK_KEYS[1 : n + 1] if n < len(RANK_KEYS) else map(_rank_key, range(1, n + 1)),
                score_texts(scores),
                strict=True,
            )
        ]
    )
    return b"%s%s" % (items, b"}" if n else b"")


def _rank_key(rank: int) -> bytes:
    return b'"rank":%d,"score":' % rank


RANK_KEYS = [_rank_key(rank) for rank in range(1001)]
_BOOL = {True: b"true", False: b"false"}
