"""The served arrays of the short lists beside the recommendations: `similar_movies.parquet` (per movie) and
`history.parquet` (per user) laid out as flat `.npy` files the lookup service memory-maps, as
`batch.serving_arrays` does for the recommendations, so no worker holds a private copy of them:

    serving/<list>/keys.npy       int64   (n_keys,)      raw movie ids (similar) or user ids (history) with
                                                         at least one row, strictly increasing
    serving/<list>/offsets.npy    int64   (n_keys + 1,)  key i owns rows offsets[i]:offsets[i + 1]
    serving/<list>/movie_pos.npy  int32   (n_rows,)      the listed movie as its position among
                                                         movies.parquet's movie ids sorted ascending
    serving/<list>/values.npy     float64 (n_rows,)      similar: the score as `short_float32`
                                  int64                  history: the rating's Unix timestamp

with <list> `similar` or `history`. Rows are in (key, rank) order. `RunWriter.publish` lists the files in
the manifest with their sha256 like every other file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from batch.contract import HISTORY, MOVIES, SIMILAR_MOVIES, RunWriter
from batch.serving_arrays import SERVING_DIR, _positions, column_array, short_float32
from model.columns import MOVIE_ID, RANK, SCORE, SIMILAR_MOVIE_ID, TIMESTAMP, USER_ID


@dataclass(frozen=True)
class ListLayout:
    """Where one Parquet list table's served arrays live and which of its columns they hold."""

    table: str  # the Parquet file the arrays are laid out from
    folder: str  # under serving/
    key: str  # the column the lists are grouped by
    movie: str  # the listed movie's column
    value: str  # the value kept per row
    column_dtype: type[np.generic]  # the value column's type in the Parquet
    value_dtype: np.dtype  # ... and in the served array

    def file(self, part: str) -> str:
        """The run-relative path of one of the four arrays: keys, offsets, movie_pos or values."""
        return f"{SERVING_DIR}/{self.folder}/{part}.npy"

    @property
    def files(self) -> dict[str, np.dtype]:
        """Run-relative path -> dtype of the four arrays."""
        dtypes = (np.dtype("<i8"), np.dtype("<i8"), np.dtype("<i4"), self.value_dtype)
        return {self.file(part): dtype for part, dtype in zip(PARTS, dtypes, strict=True)}


PARTS = ("keys", "offsets", "movie_pos", "values")
SIMILAR_LISTS = ListLayout(
    SIMILAR_MOVIES, "similar", MOVIE_ID, SIMILAR_MOVIE_ID, SCORE, np.float32, np.dtype("<f8")
)
HISTORY_LISTS = ListLayout(HISTORY, "history", USER_ID, MOVIE_ID, TIMESTAMP, np.int64, np.dtype("<i8"))


def grouped_rows(
    source: Path, table: pa.Table, key: str, movie: str, value: str, dtype: type[np.generic]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rows of a (key, rank, movie, value) list table in (key, rank) order.

    Returns:
        (keys (g,) int32 unique ascending, starts (g,) int64 first row of each, counts (g,) int64, movie
        ids (rows,) int32, values (rows,) of `dtype`).

    Raises:
        ValueError: the ranks are not 1..k for every key (naming `source`), or a column holds nulls.
    """
    keys = column_array(table, key, np.int32)
    rank = column_array(table, RANK, np.int16)
    order = np.lexsort((rank, keys))
    keys, rank = keys[order], rank[order]
    unique, starts, counts = np.unique(keys, return_index=True, return_counts=True)
    if not np.array_equal(rank, np.arange(len(keys)) - np.repeat(starts, counts) + 1):
        raise ValueError(f"{source}: ranks are not 1..k for every {key}")
    return (
        unique,
        starts,
        counts,
        column_array(table, movie, np.int32)[order],
        column_array(table, value, dtype)[order],
    )


def write_list_arrays(writer: RunWriter, layout: ListLayout) -> None:
    """Write the served arrays of `layout.table` of the run staged by `writer` (the table and movies.parquet
    must be written already). Holds the table in memory (it has at most `similar_k` rows per movie or
    `history` rows per user).

    Raises:
        ValueError: a rank is not 1..k per key, a movie is missing from movies.parquet, a score is not
            finite, or a value is null.
    """
    run = writer.staging
    source = run / layout.table
    table = pq.read_table(source, columns=[layout.key, RANK, layout.movie, layout.value])
    unique, starts, _, movies, values = grouped_rows(
        source, table, layout.key, layout.movie, layout.value, layout.column_dtype
    )
    sorted_movies = np.sort(column_array(pq.read_table(run / MOVIES, columns=[MOVIE_ID]), MOVIE_ID, np.int32))
    pos = _positions(sorted_movies, movies, source)
    if layout.value == SCORE:
        if not np.all(np.isfinite(values)):
            raise ValueError(f"{source}: scores must be finite")
        values = short_float32(values)
    (run / SERVING_DIR / layout.folder).mkdir(parents=True, exist_ok=True)
    offsets = np.append(starts, len(movies))
    for part, array in zip(PARTS, (unique, offsets, pos, values), strict=True):
        np.save(run / layout.file(part), array.astype(layout.files[layout.file(part)]))
