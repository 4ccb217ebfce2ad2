"""The served arrays: the candidates (the per-user lists `candidates` deep; the recommendations in a run
without them) laid out as flat `.npy` files the lookup service memory-maps.

The job writes them into `serving/` of the run, beside the Parquet (which stays the contract for downstream
readers; `candidates.parquet`, or the parts of `candidates/` read in user order), and `RunWriter.publish`
lists them in the manifest with their sha256 like every other file:

    serving/user_ids.npy    int64   (n_users,)      raw user ids with at least one row, strictly increasing
    serving/offsets.npy     int64   (n_users + 1,)  user i owns rows offsets[i]:offsets[i + 1]; offsets[0] = 0
    serving/movie_pos.npy   int32   (n_rows,)       the movie as its position among movies.parquet's movie
                                                    ids sorted ascending
    serving/scores.npy      float64 (n_rows,)       the float32 score as its 9-significant-digit decimal
                                                    (`short_float32`), the number responses print

Rows are in (user_id, rank) order, so a row's rank is its index minus offsets[i], plus 1. The files are
plain little-endian `.npy` (format 1.0, no pickle): `np.load(file, mmap_mode="r")` reads them. Every
worker of the service maps the same files, so they share one copy in the page cache and the per-user data
takes no private memory in any of them.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from batch.contract import CANDIDATES, MOVIES, RECOMMENDATIONS, RunWriter, has_list_table, staged_table_files
from model.columns import MOVIE_ID, RANK, SCORE, USER_ID

SERVING_DIR = "serving"
USER_IDS = f"{SERVING_DIR}/user_ids.npy"
OFFSETS = f"{SERVING_DIR}/offsets.npy"
MOVIE_POS = f"{SERVING_DIR}/movie_pos.npy"
SCORES = f"{SERVING_DIR}/scores.npy"
LAYOUT: dict[str, np.dtype] = {
    USER_IDS: np.dtype("<i8"),
    OFFSETS: np.dtype("<i8"),
    MOVIE_POS: np.dtype("<i4"),
    SCORES: np.dtype("<f8"),
}


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


def column_array(table: pa.Table, name: str, dtype: type[np.generic]) -> np.ndarray:
    """A null-free fixed-width column as a NumPy array, copied out of the Arrow buffers.

    Raises ValueError when the column holds nulls. (Not `to_numpy()`: in pyarrow that imports pandas, ~40 MB
    more per lookup-service worker.)
    """
    column = table.column(name)
    if column.null_count:
        raise ValueError(f"column {name} has {column.null_count} nulls")
    width = np.dtype(dtype).itemsize
    parts = [
        np.frombuffer(chunk.buffers()[1], dtype=dtype, count=len(chunk), offset=chunk.offset * width)
        for chunk in column.chunks
    ]
    return np.concatenate(parts) if parts else np.empty(0, dtype=dtype)


def _npy_header(file: BinaryIO, dtype: np.dtype, length: int) -> None:
    """Start a 1-D `.npy` file of `length` values of `dtype`; the values are appended after it."""
    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": (length,)}
    np.lib.format.write_array_header_1_0(file, header)


def served_source(files: Iterable[str]) -> str:
    """The list table the served arrays are laid out from: CANDIDATES when the run has them in either
    layout (`files`: the manifest's keys), else RECOMMENDATIONS."""
    return CANDIDATES if has_list_table(files, CANDIDATES) else RECOMMENDATIONS


def _positions(sorted_movies: np.ndarray, movie_ids: np.ndarray, source: Path) -> np.ndarray:
    """Positions of `movie_ids` in `sorted_movies`; ValueError when one is not there."""
    pos = np.searchsorted(sorted_movies, movie_ids)
    found = sorted_movies[np.minimum(pos, len(sorted_movies) - 1)] == movie_ids if len(sorted_movies) else []
    if len(found) != len(movie_ids) or not np.all(found):
        raise ValueError(f"{source}: movie ids missing from {MOVIES}")
    return pos


def write_serving_arrays(writer: RunWriter) -> None:
    """Write the served arrays of the run staged by `writer`, from its candidates (without them, its
    recommendations), the single file or every part of the dataset in user order, and movies.parquet (both
    must be written already); see the module docstring for the layout.

    Reads the lists one row group at a time and appends to the files, so memory is one row group plus 16
    bytes per user. The order checks run across part boundaries too: the parts must follow each other in
    user order.

    Raises:
        ValueError: no lists are staged; the lists are not sorted by (user_id, rank) with ranks 1..k per
            user, name a movie missing from movies.parquet, or hold a null or non-finite value;
            movies.parquet repeats a movie id.
    """
    run = writer.staging
    sorted_movies = np.sort(column_array(pq.read_table(run / MOVIES, columns=[MOVIE_ID]), MOVIE_ID, np.int32))
    if np.any(sorted_movies[1:] == sorted_movies[:-1]):
        raise ValueError(f"{run / MOVIES}: duplicate movie_id")
    files = staged_table_files(run, CANDIDATES) or staged_table_files(run, RECOMMENDATIONS)
    if not files:
        raise ValueError(f"{run}: no lists written")
    recs = [(file, pq.ParquetFile(file)) for file in files]
    n_rows = sum(part.metadata.num_rows for _, part in recs)
    (run / SERVING_DIR).mkdir(exist_ok=True)
    user_ids: list[np.ndarray] = []
    starts: list[np.ndarray] = []
    last_user, last_rank, row = np.iinfo(np.int64).min, 0, 0
    with (run / MOVIE_POS).open("wb") as movie_pos, (run / SCORES).open("wb") as scores:
        _npy_header(movie_pos, LAYOUT[MOVIE_POS], n_rows)
        _npy_header(scores, LAYOUT[SCORES], n_rows)
        for source, file, group in ((p, f, g) for p, f in recs for g in range(f.num_row_groups)):
            table = file.read_row_group(group, columns=[USER_ID, RANK, MOVIE_ID, SCORE])
            if table.num_rows == 0:
                continue
            user = column_array(table, USER_ID, np.int32).astype(np.int64)
            rank = column_array(table, RANK, np.int16).astype(np.int64)
            previous_user = np.concatenate([[last_user], user[:-1]])
            previous_rank = np.concatenate([[last_rank], rank[:-1]])
            new_user = user != previous_user
            in_order = np.where(new_user, (user > previous_user) & (rank == 1), rank == previous_rank + 1)
            if not np.all(in_order):
                raise ValueError(f"{source}: rows are not sorted by ({USER_ID}, {RANK}) with ranks 1..k")
            pos = _positions(sorted_movies, column_array(table, MOVIE_ID, np.int32), source)
            score = column_array(table, SCORE, np.float32)
            if not np.all(np.isfinite(score)):
                raise ValueError(f"{source}: scores must be finite")
            movie_pos.write(pos.astype(LAYOUT[MOVIE_POS]).tobytes())
            scores.write(short_float32(score).astype(LAYOUT[SCORES]).tobytes())
            user_ids.append(user[new_user])
            starts.append(row + np.flatnonzero(new_user))
            last_user, last_rank, row = int(user[-1]), int(rank[-1]), row + len(user)
    np.save(run / USER_IDS, np.concatenate([np.empty(0, np.int64), *user_ids]).astype(LAYOUT[USER_IDS]))
    offsets = np.concatenate([np.empty(0, np.int64), *starts, [n_rows]]).astype(LAYOUT[OFFSETS])
    np.save(run / OFFSETS, offsets)
