"""`RunStore`: one verified run as flat NumPy arrays, for lookups without per-row Python objects.

Recommendations are flat arrays in (user, rank) order plus an offset per user. A run that carries the
served arrays (`batch/serving_arrays.py`, `serving/*.npy`) is memory-mapped: every worker maps the same
files, the page cache holds them once, and no per-user data is copied into a worker's private memory
(users are found by binary search over the mapped ids). A run without them is built in memory from its
candidates (or, in a run without those, its recommendations): the single file, or the parts of its
folder in user order. The similar-movie and history lists are mapped the same way from their own served
arrays (`batch/served_lists.py`, `serving/similar/`, `serving/history/`) when the run has them. Either way
the arrays are checked before the store is served (bounds, order, counts, finite scores), after
`verify_run` has checked every file's size and sha256 against the manifest.
The movies table and its id index are held in memory: they grow with the catalogue, not with the users.
Raw ids map to positions through `IdIndex` (a dense int32 table indexed by raw id when ids are compact,
else a binary search).
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
    CANDIDATES,
    HISTORY,
    METRICS,
    MOVIES,
    POPULAR,
    SIMILAR_MOVIES,
    Manifest,
    RunInvalid,
    dataset_dir,
    has_list_table,
    table_parts,
    verify_run,
)
from batch.served_lists import HISTORY_LISTS, SIMILAR_LISTS, ListLayout, grouped_rows
from batch.serving_arrays import (
    LAYOUT,
    MOVIE_POS,
    OFFSETS,
    SCORES,
    USER_IDS,
    column_array,
    served_source,
    short_float32,
)
from lookup_service.body_cache import BodyCache
from lookup_service.render import movie_fragment
from lookup_service.rules import CatalogFacts, NeighbourLists
from model.columns import GENRES, MOVIE_ID, RANK, SCORE, SIMILAR_MOVIE_ID, TIMESTAMP, TITLE, USER_ID, YEAR

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
        facts: per movie position, what request-time rules read (genre membership, year, popularity rank).
        similar: each movie's most similar movies (similar_movies.parquet; empty lists without it).
        history: each user's newest rated movies (history.parquet; None without it), `Recent`.
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
    facts: CatalogFacts
    similar: NeighbourLists
    history: Recent | None

    @property
    def run_id(self) -> str:
        return self.manifest.run_id

    @property
    def top_n(self) -> int:
        return self.manifest.top_n

    @property
    def depth(self) -> int:
        """Movies per user the served lists hold (`candidates` of the run; top_n for a run without it)."""
        return list_depth(self.manifest)

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

    @property
    def similar_k(self) -> int:
        return self.manifest.similar_k or 0 if SIMILAR_MOVIES in self.manifest.files else 0


@dataclass(frozen=True)
class Recent:
    """history.parquet's lists: user position u owns rows offsets[u]:offsets[u + 1], newest first."""

    users: IdIndex
    offsets: np.ndarray
    movie_pos: np.ndarray
    timestamps: np.ndarray

    def of(self, user_id: int) -> tuple[np.ndarray, np.ndarray] | None:
        pos = self.users.position(user_id)
        if pos < 0:
            return None
        start, stop = self.offsets[pos], self.offsets[pos + 1]
        return self.movie_pos[start:stop], self.timestamps[start:stop]


LOAD_ERRORS = (RunInvalid, OSError, ValueError, KeyError, pa.ArrowException)


def list_depth(manifest: Manifest) -> int:
    """Ranks per user in the served lists: the run's `candidates` when it has candidates (either layout),
    else top_n."""
    if has_list_table(manifest.files, CANDIDATES) and manifest.candidates:
        return manifest.candidates
    return manifest.top_n


def load_run(path: Path, body_cache_bytes: int = 0) -> RunStore:
    """Verify a run directory against its manifest and load it, with an empty `BodyCache` of
    `body_cache_bytes` (0: no caching): memory-mapping its served arrays when the manifest lists them,
    else building the arrays from the candidates (without them, the recommendations; single file or
    dataset parts).

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
    genre_lists = [columns[GENRES][i] or [] for i in order.tolist()]
    years = [columns[YEAR][i] for i in order.tolist()]
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
    facts = CatalogFacts.build(genre_lists, years, popular.movie_pos)
    similar = _load_similar(path, manifest, movie_index)
    history = _load_history(path, manifest, movie_index) if HISTORY in manifest.files else None
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
        facts,
        similar,
        history,
    )


def _grouped(
    file: Path, table: pa.Table, key: str, movie: str, value: str, dtype: type[np.generic], limit: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rows of a (key, rank, movie, value) table sorted by (key, rank), checked: ranks 1..k per key with
    k <= limit. Returns (keys (g,), starts (g,), counts (g,), movie ids (rows,), values (rows,))."""
    try:
        unique, starts, counts, movies, values = grouped_rows(file, table, key, movie, value, dtype)
    except ValueError as exc:
        raise RunInvalid(str(exc)) from None
    if len(counts) and counts.max() > limit:
        raise RunInvalid(f"{file}: a {key} has {counts.max()} rows, the manifest allows {limit}")
    return unique, starts, counts, movies, values


def _load_similar(path: Path, manifest: Manifest, movie_index: IdIndex) -> NeighbourLists:
    """similar_movies.parquet as flat arrays by movie position (every list empty when the run has none):
    its served arrays memory-mapped when the manifest lists them, else read from the Parquet."""
    n_movies = len(movie_index.ids)
    if SIMILAR_MOVIES not in manifest.files:
        empty = np.zeros(n_movies + 1, dtype=np.int64)
        return NeighbourLists(empty, np.empty(0, np.int32), np.empty(0, np.float64))
    file = path / SIMILAR_MOVIES
    limit = manifest.similar_k or 0
    if _has_list_arrays(path, manifest, SIMILAR_LISTS):
        movies, offsets, neighbours, scores = _map_list_arrays(path, manifest, SIMILAR_LISTS, n_movies, limit)
        counts = np.diff(offsets)
        owners = movie_index.positions(movies)
        if np.any(owners < 0):
            raise RunInvalid(f"{path / SIMILAR_LISTS.file('keys')}: movie ids missing from {MOVIES}")
    else:
        table = pq.ParquetFile(file).read()
        movies, _, counts, similar, scores = _grouped(
            file, table, MOVIE_ID, SIMILAR_MOVIE_ID, SCORE, np.float32, limit
        )
        owners = _movie_positions(file, movies, movie_index)
        neighbours = _movie_positions(file, similar, movie_index)
        scores = _finite_scores(file, scores)
    bounds = np.concatenate([[0], np.cumsum(counts)])
    step = max(CHECK_BLOCK // max(limit, 1), 1)  # movies per check: bounded temporaries
    for first in range(0, len(owners), step):
        last = min(first + step, len(owners))
        rows = slice(int(bounds[first]), int(bounds[last]))
        if np.any(neighbours[rows] == np.repeat(owners[first:last], counts[first:last])):
            raise RunInvalid(f"{file}: a movie is listed as similar to itself")
    per_movie = np.zeros(n_movies, dtype=np.int64)
    per_movie[owners] = counts
    offsets = np.concatenate([[0], np.cumsum(per_movie)]).astype(np.int64)
    # rows are sorted by movie id, which is movie position order, so they already line up with `offsets`
    return NeighbourLists(offsets, neighbours, scores)


def _load_history(path: Path, manifest: Manifest, movie_index: IdIndex) -> Recent:
    """history.parquet by user: its served arrays memory-mapped when the manifest lists them (users found
    by binary search over the mapped ids), else read from the Parquet."""
    limit = manifest.history or 0
    if _has_list_arrays(path, manifest, HISTORY_LISTS):
        users, offsets, movies, times = _map_list_arrays(
            path, manifest, HISTORY_LISTS, len(movie_index.ids), limit
        )
        return Recent(IdIndex(users, dense=False), offsets, movies, times)
    file = path / HISTORY
    table = pq.ParquetFile(file).read()
    users, starts, _, movies, times = _grouped(file, table, USER_ID, MOVIE_ID, TIMESTAMP, np.int64, limit)
    offsets = np.append(starts, len(movies)).astype(np.int64)
    return Recent(IdIndex(users), offsets, _movie_positions(file, movies, movie_index), times)


def _served_parts(path: Path, manifest: Manifest) -> tuple[list[str], str]:
    """The manifest keys the served lists come from (`served_source`: the candidates, else the
    recommendations) in user order, and how errors name them: the single file, or the dataset's folder."""
    table = served_source(manifest.files)
    parts = table_parts(path, manifest, table)
    return parts, (table if parts == [table] else dataset_dir(table) + "/")


def _has_list_arrays(path: Path, manifest: Manifest, layout: ListLayout) -> bool:
    """Whether the manifest lists `layout`'s served arrays: all four, or none (a run of an older job)."""
    listed = [name for name in layout.files if name in manifest.files]
    if listed and len(listed) < len(layout.files):
        raise RunInvalid(f"{path}: the manifest lists {listed} but not all of {list(layout.files)}")
    return bool(listed)


def _map_list_arrays(
    path: Path, manifest: Manifest, layout: ListLayout, n_movies: int, limit: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Memory-map `layout`'s served arrays (`batch.served_lists`) read only and check them in blocks:
    dtypes and lengths (as many rows as the Parquet's footer says), keys strictly increasing, 1..limit
    rows per key, movie positions inside `movies`, finite scores. Returns (keys, offsets, movie_pos,
    values)."""
    keys, offsets, movie_pos, values = (_map(path / name, dtype) for name, dtype in layout.files.items())
    files = [path / name for name in layout.files]
    n_rows = pq.ParquetFile(path / layout.table).metadata.num_rows
    noun = layout.key.removesuffix("_id")
    _check_grouped(files, (keys, offsets, movie_pos, values), n_rows, layout.table, limit, n_movies, noun)
    return keys, offsets, movie_pos, values


def _map_served_arrays(
    path: Path, manifest: Manifest, n_movies: int
) -> tuple[IdIndex, np.ndarray, np.ndarray, np.ndarray]:
    """Memory-map the served arrays (read only) and check them in blocks: dtypes and lengths, user ids
    strictly increasing, 1..depth rows per user, movie positions inside `movies`, finite scores, and as
    many rows as the Parquet they were laid out from (its footers only)."""
    arrays = {name: _map(path / name, dtype) for name, dtype in LAYOUT.items()}
    user_ids, offsets = arrays[USER_IDS], arrays[OFFSETS]
    movie_pos, scores = arrays[MOVIE_POS], arrays[SCORES]
    parts, source = _served_parts(path, manifest)
    depth = list_depth(manifest)
    n_rows = sum(pq.ParquetFile(path / part).metadata.num_rows for part in parts)
    files = [path / name for name in (USER_IDS, OFFSETS, MOVIE_POS, SCORES)]
    _check_grouped(files, (user_ids, offsets, movie_pos, scores), n_rows, source, depth, n_movies, "user")
    return IdIndex(user_ids, dense=False), offsets, movie_pos, scores


def _check_grouped(
    files: list[Path],
    arrays: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    n_rows: int,
    source: str,
    limit: int,
    n_movies: int,
    noun: str,
) -> None:
    """Check mapped (keys, offsets, movie_pos, values) arrays (`files`, in that order) in blocks: lengths
    (`n_rows`, the Parquet `source`'s row count), offsets from 0 to n_rows, keys strictly increasing,
    1..limit rows per key (a `noun`), movie positions inside `movies`, and finite values when they are
    scores (float)."""
    keys, offsets, movie_pos, values = arrays
    if len(offsets) != len(keys) + 1 or len(movie_pos) != n_rows or len(values) != n_rows:
        raise RunInvalid(
            f"{files[0].parent}: served arrays of {len(keys)} {noun}s, {len(offsets)} offsets, "
            f"{len(movie_pos)} movies and {len(values)} values for {n_rows} rows in {source}"
        )
    if offsets[0] != 0 or offsets[-1] != n_rows:
        raise RunInvalid(f"{files[1]}: must run from 0 to {n_rows}")
    for start in range(0, len(keys), CHECK_BLOCK):
        block = keys[max(start - 1, 0) : start + CHECK_BLOCK]
        if np.any(block[1:] <= block[:-1]):
            raise RunInvalid(f"{files[0]}: not strictly increasing")
        counts = np.diff(offsets[start : start + CHECK_BLOCK + 1])
        if np.any(counts < 1) or np.any(counts > limit):
            raise RunInvalid(f"{files[1]}: a {noun} has no rows or more than {limit}")
    for start in range(0, n_rows, CHECK_BLOCK):
        block = movie_pos[start : start + CHECK_BLOCK]
        if block.min() < 0 or block.max() >= n_movies:
            raise RunInvalid(f"{files[2]}: positions outside the {n_movies} movies of {MOVIES}")
        if values.dtype.kind == "f" and not np.all(np.isfinite(values[start : start + CHECK_BLOCK])):
            raise RunInvalid(f"{files[3]}: scores must be finite")


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
    parts, name = _served_parts(path, manifest)
    source = path / name
    depth = list_depth(manifest)
    table = pa.concat_tables([pq.ParquetFile(path / part).read() for part in parts])
    user = _column(table, USER_ID, np.int32)
    rank = _column(table, RANK, np.int16)
    order = np.lexsort((rank, user))
    user, rank = user[order], rank[order]
    movie = _column(table, MOVIE_ID, np.int32)[order]
    scores = _finite_scores(source, _column(table, SCORE, np.float32)[order])
    user_ids, starts, counts = np.unique(user, return_index=True, return_counts=True)
    expected_rank = np.arange(len(user)) - np.repeat(starts, counts) + 1
    if not np.array_equal(rank, expected_rank):
        raise RunInvalid(f"{source}: ranks are not 1..k for every user")
    if len(counts) and counts.max() > depth:
        raise RunInvalid(f"{source}: a user has {counts.max()} rows, the lists hold at most {depth}")
    movie_pos = _movie_positions(source, movie, movie_index)
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
    depth = list_depth(manifest)
    return RankedList(movie_pos[:depth], scores[:depth])


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
