"""`RunStore`: one verified run held in compact NumPy arrays, for O(1) lookups.

Recommendations are kept as flat arrays sorted by (user, rank) plus an offset per user, never as Python
objects per row: for ML-1M (6,040 users x 50) that is ~2.4 MB of arrays. Raw ids map to positions through
`IdIndex` (a dense int32 table indexed by raw id when ids are compact, else a binary search).
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from batch.contract import METRICS, MOVIES, POPULAR, RECOMMENDATIONS, Manifest, RunInvalid, verify_run
from lookup_service.body_cache import BodyCache
from lookup_service.render import movie_fragment, score_texts, short_float32
from model.columns import GENRES, MOVIE_ID, RANK, SCORE, TITLE, USER_ID, YEAR

logger = logging.getLogger(__name__)

RUN_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
DENSE_SLACK = 1 << 20  # a dense id table may hold this many unused slots beyond 4 per id


class IdIndex:
    """Raw id -> position in a sorted array of unique ids, or -1.

    Args:
        ids: (n,) sorted, unique int raw ids (a dense table when they are non-negative and compact).
    """

    def __init__(self, ids: np.ndarray) -> None:
        self.ids = np.ascontiguousarray(ids, dtype=np.int64)
        max_id = int(self.ids[-1]) if len(self.ids) else -1
        self.dense: np.ndarray | None = None
        if (not len(self.ids) or self.ids[0] >= 0) and max_id < 4 * len(self.ids) + DENSE_SLACK:
            self.dense = np.full(max_id + 1, -1, dtype=np.int32)
            self.dense[self.ids] = np.arange(len(self.ids), dtype=np.int32)

    def position(self, raw_id: int) -> int:
        """Position of one raw id, -1 when unknown; O(1) with the dense table."""
        if self.dense is not None:
            return int(self.dense[raw_id]) if 0 <= raw_id < len(self.dense) else -1
        pos = int(np.searchsorted(self.ids, raw_id))
        return pos if pos < len(self.ids) and self.ids[pos] == raw_id else -1

    def positions(self, raw_ids: np.ndarray) -> np.ndarray:
        """(n,) int32 positions of many raw ids, -1 where unknown."""
        raw_ids = np.asarray(raw_ids, dtype=np.int64)
        pos = np.searchsorted(self.ids, raw_ids)
        clipped = np.minimum(pos, max(len(self.ids) - 1, 0))
        found = (pos < len(self.ids)) & (self.ids[clipped] == raw_ids) if len(self.ids) else pos < 0
        return np.where(found, clipped, -1).astype(np.int32)


@dataclass(frozen=True)
class RankedList:
    """One user's (or the popular) list: positions into `RunStore.movies` and scores, best first."""

    movie_pos: np.ndarray  # (k,) int32
    scores: np.ndarray  # (k,) float64: the float32 scores as short decimals (`render.short_float32`)
    score_text: np.ndarray  # (k,) bytes (NumPy S): each score's JSON number (`render.score_texts`)


@dataclass(frozen=True)
class RunStore:
    """A loaded run. Immutable: a reload builds a new one and swaps the reference.

    Attributes:
        manifest: the run's verified manifest.
        metrics: metrics.json.
        users: raw user id -> user position.
        offsets: (n_users + 1,) int64; user position u owns rows offsets[u]:offsets[u+1].
        rec_movie_pos: (n_recs,) int32 position of the recommended movie in `movies`.
        rec_scores: (n_recs,) float64, the float32 scores as short decimals.
        rec_score_text: (n_recs,) bytes (NumPy S), their JSON numbers.
        popular: the popularity fallback list.
        movie_index: raw movie id -> position in `movies`.
        movies: one JSON-ready dict per movie (movie_id, title, year, genres); metadata, not per-row data.
        movie_fragments: each movie's JSON prefix for `render.recommendations_json`.
        bodies: rendered response bodies of this run by (user_id, n), filled by the API on first use and
            dropped with the store on reload.
    """

    manifest: Manifest
    metrics: dict[str, Any]
    users: IdIndex
    offsets: np.ndarray
    rec_movie_pos: np.ndarray
    rec_scores: np.ndarray
    rec_score_text: np.ndarray
    popular: RankedList
    movie_index: IdIndex
    movies: list[dict[str, Any]]
    movie_fragments: list[bytes]
    bodies: BodyCache

    @property
    def run_id(self) -> str:
        return self.manifest.run_id

    @property
    def top_n(self) -> int:
        return self.manifest.top_n

    def for_user(self, user_id: int) -> RankedList | None:
        """The user's recommendations, or None for a user the run does not know. O(1)."""
        pos = self.users.position(user_id)
        if pos < 0:
            return None
        start, stop = self.offsets[pos], self.offsets[pos + 1]
        return RankedList(
            self.rec_movie_pos[start:stop], self.rec_scores[start:stop], self.rec_score_text[start:stop]
        )

    def movie(self, movie_id: int) -> dict[str, Any] | None:
        pos = self.movie_index.position(movie_id)
        return self.movies[pos] if pos >= 0 else None


LOAD_ERRORS = (RunInvalid, OSError, ValueError, KeyError, pa.ArrowException)


def load_run(path: Path, body_cache_bytes: int = 0) -> RunStore:
    """Verify a run directory against its manifest and load it, with an empty `BodyCache` of
    `body_cache_bytes` (0: no caching).

    Raises:
        RunInvalid: the run breaks the contract (checksums, schemas, ranks, unknown movies).
        OSError, pyarrow.ArrowException: unreadable files (callers treat them as an invalid run too).
    """
    started = time.perf_counter()
    manifest = verify_run(path)
    movies_table = pq.ParquetFile(path / MOVIES).read()
    movie_ids = _column(movies_table, MOVIE_ID, np.int32)
    order = np.argsort(movie_ids, kind="stable")
    if len(movie_ids) and np.any(np.diff(movie_ids[order]) == 0):
        raise RunInvalid(f"{path / MOVIES}: duplicate movie_id")
    movie_index = IdIndex(movie_ids[order])
    rows = movies_table.to_pylist()
    movies = [
        {MOVIE_ID: r[MOVIE_ID], TITLE: r[TITLE], YEAR: r[YEAR], GENRES: r[GENRES] or []}
        for r in (rows[i] for i in order.tolist())
    ]

    users, offsets, rec_movie_pos, rec_scores = _load_recommendations(path, manifest, movie_index)
    popular = _load_popular(path, manifest, movie_index)
    metrics = json.loads((path / METRICS).read_text())
    fragments = [movie_fragment(m) for m in movies]
    pa.default_memory_pool().release_unused()  # Arrow's allocator keeps freed read buffers otherwise
    logger.info(
        "loaded run %s: %d users, %d recommendations, %d movies in %.2fs",
        manifest.run_id,
        len(users.ids),
        len(rec_scores),
        len(movies),
        time.perf_counter() - started,
    )
    return RunStore(
        manifest,
        metrics,
        users,
        offsets,
        rec_movie_pos,
        rec_scores,
        score_texts(rec_scores),
        popular,
        movie_index,
        movies,
        fragments,
        BodyCache(body_cache_bytes),
    )


def _load_recommendations(
    path: Path, manifest: Manifest, movie_index: IdIndex
) -> tuple[IdIndex, np.ndarray, np.ndarray, np.ndarray]:
    table = pq.ParquetFile(path / RECOMMENDATIONS).read()
    user = _column(table, USER_ID, np.int32)
    rank = _column(table, RANK, np.int16)
    order = np.lexsort((rank, user))
    user, rank = user[order], rank[order]
    movie = _column(table, MOVIE_ID, np.int32)[order]
    scores = _finite_scores(path / RECOMMENDATIONS, _column(table, SCORE, np.float32)[order])
    user_ids, starts, counts = np.unique(user, return_index=True, return_counts=True)
    expected_rank = np.arange(len(user)) - np.repeat(starts, counts) + 1
    if not np.array_equal(rank, expected_rank):
        raise RunInvalid(f"{path / RECOMMENDATIONS}: ranks are not 1..k for every user")
    if len(counts) and counts.max() > manifest.top_n:
        raise RunInvalid(
            f"{path / RECOMMENDATIONS}: a user has {counts.max()} rows, top_n is {manifest.top_n}"
        )
    movie_pos = _movie_positions(path / RECOMMENDATIONS, movie, movie_index)
    offsets = np.append(starts, len(user)).astype(np.int64)
    return IdIndex(user_ids), offsets, movie_pos, scores


def _load_popular(path: Path, manifest: Manifest, movie_index: IdIndex) -> RankedList:
    table = pq.ParquetFile(path / POPULAR).read()
    rank = _column(table, RANK, np.int16)
    order = np.argsort(rank, kind="stable")
    if not np.array_equal(rank[order], np.arange(1, len(rank) + 1)):
        raise RunInvalid(f"{path / POPULAR}: ranks are not 1..k")
    if len(rank) == 0:
        raise RunInvalid(f"{path / POPULAR}: empty")
    movie_pos = _movie_positions(path / POPULAR, _column(table, MOVIE_ID, np.int32)[order], movie_index)
    scores = _finite_scores(path / POPULAR, _column(table, SCORE, np.float32)[order])
    scores = scores[: manifest.top_n]
    return RankedList(movie_pos[: manifest.top_n], scores, score_texts(scores))


def _column(table: pa.Table, name: str, dtype: type[np.generic]) -> np.ndarray:
    """A null-free fixed-width column as a NumPy array, copied out of the Arrow buffers.

    (Not `to_numpy()`: in pyarrow that imports pandas, ~40 MB more per worker.)
    """
    column = table.column(name)
    if column.null_count:
        raise RunInvalid(f"column {name} has {column.null_count} nulls")
    width = np.dtype(dtype).itemsize
    parts = [
        np.frombuffer(chunk.buffers()[1], dtype=dtype, count=len(chunk), offset=chunk.offset * width)
        for chunk in column.chunks
    ]
    return np.concatenate(parts) if parts else np.empty(0, dtype=dtype)


def _finite_scores(file: Path, scores: np.ndarray) -> np.ndarray:
    """Scores for responses (`render.short_float32`); NaN or infinity (not valid JSON) refuses the run."""
    if not np.all(np.isfinite(scores)):
        raise RunInvalid(f"{file}: scores must be finite")
    return short_float32(scores)


def _movie_positions(file: Path, movie_ids: np.ndarray, movie_index: IdIndex) -> np.ndarray:
    pos = movie_index.positions(movie_ids)
    if np.any(pos < 0):
        missing = np.unique(movie_ids[pos < 0])[:5].tolist()
        raise RunInvalid(f"{file}: movie ids missing from {MOVIES}, e.g. {missing}")
    return pos


def valid_run_id(run_id: str) -> bool:
    """A run id from LATEST is used as a directory name: no separators, no leading dot."""
    return bool(RUN_ID_PATTERN.match(run_id))
