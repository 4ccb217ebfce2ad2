"""`RunStore`: one verified run as flat NumPy arrays, for lookups without per-row Python objects.

Recommendations are flat arrays in (user, rank) order plus an offset per user. A run that carries the
served arrays (`batch/serving_arrays.py`, `serving/*.npy`) is memory-mapped: every worker maps the same
files, the page cache holds them once, and no per-user data is copied into a worker's private memory
(users are found by binary search over the mapped ids). A run without them is built in memory from
its recommendations (recommendations.parquet, or the parts of recommendations/ in user order). Either
way the arrays are checked before the store is served (bounds, order, counts, finite scores), after
`verify_run` has checked every file's size and sha256 against the manifest. The movies table and its id
index are held in memory: they grow with the catalogue, not with the users. Raw ids map to positions
through `IdIndex` (a dense int32 table indexed by raw id when ids are compact, else a binary search).
"""

from __future__ import annotations

import bisect
import json
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from batch.contract import (
    METRICS,
    MOVIES,
    POPULAR,
    RECOMMENDATIONS_DIR,
    Manifest,
    RunInvalid,
    recommendation_parts,
    verify_run,
)
from batch.serving_arrays import LAYOUT, MOVIE_POS, OFFSETS, SCORES, USER_IDS, column_array, short_float32
from lookup_service.body_cache import BodyCache
from lookup_service.render import movie_fragment
from model.columns import GENRES, MOVIE_ID, RANK, SCORE, TITLE, USER_ID, YEAR

logger = logging.getLogger(__name__)

RUN_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
DENSE_SLACK = 1 << 20  # a dense id table may hold this many unused slots beyond 4 per id
CHECK_BLOCK = 1 << 20  # mapped arrays are checked this many values at a time (bounded temporaries)


class IdIndex:
    """Raw id -> position in a sorted array of unique ids, or -1.

    Args:
        ids: (n,) sorted, unique int raw ids, kept without a copy when already int64 and contiguous (a
            memory-mapped array stays mapped).
        dense: also build a dense table when the ids are non-negative and compact (private memory of
            4 bytes per slot); without it every lookup is a binary search over `ids`.
    """

    def __init__(self, ids: np.ndarray, dense: bool = True) -> None:
        self.ids = np.ascontiguousarray(ids, dtype=np.int64)
        self._sorted = memoryview(self.ids)  # `bisect` over it: no NumPy call per lookup
        max_id = int(self.ids[-1]) if len(self.ids) else -1
        self.dense: np.ndarray | None = None
        if dense and (not len(self.ids) or self.ids[0] >= 0) and max_id < 4 * len(self.ids) + DENSE_SLACK:
            self.dense = np.full(max_id + 1, -1, dtype=np.int32)
            self.dense[self.ids] = np.arange(len(self.ids), dtype=np.int32)

    def position(self, raw_id: int) -> int:
        """Position of one raw id, -1 when unknown; O(1) with the dense table, else a binary search."""
        if self.dense is not None:
            return int(self.dense[raw_id]) if 0 <= raw_id < len(self.dense) else -1
        pos = bisect.bisect_left(self._sorted, raw_id)
        return pos if pos < len(self._sorted) and self._sorted[pos] == raw_id else -1

    def positions(self, raw_ids: np.ndarray) -> np.ndarray:
        """(n,) int32 positions of many raw ids, -1 where unknown."""
        raw_ids = np.asarray(raw_ids, dtype=np.int64)
        pos = np.searchsorted(self.ids, raw_ids)
        clipped = np.minimum(pos, max(len(self.ids) - 1, 0))
        found = (pos < len(self.ids)) & (self.ids[clipped] == raw_ids) if len(self.ids) else pos < 0
        return np.where(found, clipped, -1).astype(np.int32)


class MovieList(Sequence[dict[str, Any]]):
    """The run's movies in movie id order, held only as their JSON fragments (`render.movie_fragment`,
    which responses are built from); `movies[pos]` decodes one movie's dict (movie_id, title, year, genres)
    from its fragment. ~60,000 movies take ~8 MB this way, against ~40 MB as Python dicts and lists."""

    def __init__(self, fragments: list[bytes]) -> None:
        self.fragments = fragments

    def __len__(self) -> int:
        return len(self.fragments)

    def __getitem__(self, pos: int) -> dict[str, Any]:  # type: ignore[override]
        return json.loads(self.fragments[pos][:-1] + b"}")


@dataclass(frozen=True)
class RankedList:
    """One user's (or the popular) list: positions into `RunStore.movies` and scores, best first."""

    movie_pos: np.ndarray  # (k,) int32
    scores: np.ndarray  # (k,) float64: the float32 scores as short decimals (`short_float32`)


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
        memory_mapped: True when `users.ids`, `offsets`, `rec_movie_pos` and `rec_scores` are views of the
            run's memory-mapped served arrays, False when they were built in memory from the Parquet.
        popular: the popularity fallback list.
        movie_index: raw movie id -> position in `movies`.
        movies: the movies in movie id order, each read as a JSON-ready dict (movie_id, title, year,
            genres); metadata, not per-row data.
        movie_fragments: each movie's JSON prefix for `render.recommendations_json` (what `movies` holds).
        bodies: rendered response bodies of this run by (user_id, n), filled by the API on first use and
            dropped with the store on reload.
    """

    manifest: Manifest
    metrics: dict[str, Any]
    users: IdIndex
    offsets: np.ndarray
    rec_movie_pos: np.ndarray
    rec_scores: np.ndarray
    memory_mapped: bool
    popular: RankedList
    movie_index: IdIndex
    movies: MovieList
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
        return RankedList(self.rec_movie_pos[start:stop], self.rec_scores[start:stop])

    def movie(self, movie_id: int) -> dict[str, Any] | None:
        pos = self.movie_index.position(movie_id)
        return self.movies[pos] if pos >= 0 else None


LOAD_ERRORS = (RunInvalid, OSError, ValueError, KeyError, pa.ArrowException)


def load_run(path: Path, body_cache_bytes: int = 0) -> RunStore:
    """Verify a run directory against its manifest and load it, with an empty `BodyCache` of
    `body_cache_bytes` (0: no caching): memory-mapping its served arrays when the manifest lists them,
    else building the arrays from the recommendations (single file or dataset parts).

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
    columns = {name: movies_table.column(name).to_pylist() for name in (MOVIE_ID, TITLE, YEAR, GENRES)}
    fragments = [
        movie_fragment(
            {
                MOVIE_ID: columns[MOVIE_ID][i],
                TITLE: columns[TITLE][i],
                YEAR: columns[YEAR][i],
                GENRES: columns[GENRES][i] or [],
            }
        )
        for i in order.tolist()
    ]
    del columns, movies_table
    movies = MovieList(fragments)

    mapped = [name for name in LAYOUT if name in manifest.files]
    if mapped and len(mapped) < len(LAYOUT):
        raise RunInvalid(f"{path}: the manifest lists {mapped} but not all of {list(LAYOUT)}")
    if mapped:
        users, offsets, rec_movie_pos, rec_scores = _map_served_arrays(path, manifest, len(movies))
    else:
        users, offsets, rec_movie_pos, rec_scores = _load_recommendations(path, manifest, movie_index)
    popular = _load_popular(path, manifest, movie_index)
    metrics = json.loads((path / METRICS).read_text())
    pa.default_memory_pool().release_unused()  # Arrow's allocator keeps freed read buffers otherwise
    logger.info(
        "loaded run %s: %d users, %d recommendations (%s), %d movies in %.2fs",
        manifest.run_id,
        len(users.ids),
        len(rec_scores),
        "memory-mapped" if mapped else "from Parquet",
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
        bool(mapped),
        popular,
        movie_index,
        movies,
        fragments,
        BodyCache(body_cache_bytes),
    )


def _map_served_arrays(
    path: Path, manifest: Manifest, n_movies: int
) -> tuple[IdIndex, np.ndarray, np.ndarray, np.ndarray]:
    """Memory-map the served arrays (read only) and check them in blocks: dtypes and lengths, user ids
    strictly increasing, 1..top_n rows per user, movie positions inside `movies`, finite scores, and as
    many rows as the recommendations (their footers only)."""
    arrays = {name: _map(path / name, dtype) for name, dtype in LAYOUT.items()}
    user_ids, offsets = arrays[USER_IDS], arrays[OFFSETS]
    movie_pos, scores = arrays[MOVIE_POS], arrays[SCORES]
    parts = recommendation_parts(path, manifest)
    n_rows = sum(pq.ParquetFile(path / part).metadata.num_rows for part in parts)
    source = parts[0] if len(parts) == 1 else RECOMMENDATIONS_DIR + "/"
    if len(offsets) != len(user_ids) + 1 or len(movie_pos) != n_rows or len(scores) != n_rows:
        raise RunInvalid(
            f"{path}: served arrays of {len(user_ids)} users, {len(offsets)} offsets, {len(movie_pos)} "
            f"movies and {len(scores)} scores for {n_rows} rows in {source}"
        )
    if offsets[0] != 0 or offsets[-1] != n_rows:
        raise RunInvalid(f"{path / OFFSETS}: must run from 0 to {n_rows}")
    for start in range(0, len(user_ids), CHECK_BLOCK):
        ids = user_ids[max(start - 1, 0) : start + CHECK_BLOCK]
        if np.any(ids[1:] <= ids[:-1]):
            raise RunInvalid(f"{path / USER_IDS}: not strictly increasing")
        counts = np.diff(offsets[start : start + CHECK_BLOCK + 1])
        if np.any(counts < 1) or np.any(counts > manifest.top_n):
            raise RunInvalid(f"{path / OFFSETS}: a user has no rows or more than top_n {manifest.top_n}")
    for start in range(0, n_rows, CHECK_BLOCK):
        block = movie_pos[start : start + CHECK_BLOCK]
        if block.min() < 0 or block.max() >= n_movies:
            raise RunInvalid(f"{path / MOVIE_POS}: positions outside the {n_movies} movies of {MOVIES}")
        if not np.all(np.isfinite(scores[start : start + CHECK_BLOCK])):
            raise RunInvalid(f"{path / SCORES}: scores must be finite")
    return IdIndex(user_ids, dense=False), offsets, movie_pos, scores


def _map(file: Path, dtype: np.dtype) -> np.ndarray:
    """A 1-D `.npy` of `dtype` mapped read only, as a plain ndarray view (which keeps the mapping open)."""
    try:
        array = np.lib.format.open_memmap(file, mode="r")
    except ValueError as exc:
        raise RunInvalid(f"{file}: not a mappable .npy file: {exc}") from None
    if array.dtype != dtype or array.ndim != 1:
        raise RunInvalid(f"{file}: expected a 1-D {dtype} array, found {array.dtype} {array.shape}")
    return np.asarray(array)


def _load_recommendations(
    path: Path, manifest: Manifest, movie_index: IdIndex
) -> tuple[IdIndex, np.ndarray, np.ndarray, np.ndarray]:
    parts = recommendation_parts(path, manifest)
    table = pa.concat_tables([pq.ParquetFile(path / part).read() for part in parts])
    where = path / (parts[0] if len(parts) == 1 else RECOMMENDATIONS_DIR)
    user = _column(table, USER_ID, np.int32)
    rank = _column(table, RANK, np.int16)
    order = np.lexsort((rank, user))
    user, rank = user[order], rank[order]
    movie = _column(table, MOVIE_ID, np.int32)[order]
    scores = _finite_scores(where, _column(table, SCORE, np.float32)[order])
    user_ids, starts, counts = np.unique(user, return_index=True, return_counts=True)
    expected_rank = np.arange(len(user)) - np.repeat(starts, counts) + 1
    if not np.array_equal(rank, expected_rank):
        raise RunInvalid(f"{where}: ranks are not 1..k for every user")
    if len(counts) and counts.max() > manifest.top_n:
        raise RunInvalid(f"{where}: a user has {counts.max()} rows, top_n is {manifest.top_n}")
    movie_pos = _movie_positions(where, movie, movie_index)
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
    return RankedList(movie_pos[: manifest.top_n], scores[: manifest.top_n])


def _column(table: pa.Table, name: str, dtype: type[np.generic]) -> np.ndarray:
    """`column_array`, a null refusing the run."""
    try:
        return column_array(table, name, dtype)
    except ValueError as exc:
        raise RunInvalid(str(exc)) from None


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
