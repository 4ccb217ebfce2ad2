"""One chunk of users' lists as tables of the output contract, shared by both executors (the local chunk
loop in `batch.job.write_recommendations` and the Ray shard scorers in `batch.distributed`), so their rows
are selected and built the same way: the top `depth` movies (candidates) and their first `top_n`
(recommendations) from one scoring of the chunk; `scored_chunks`, which scores the next chunk of users
while the caller selects and writes the current one, and `ListWriter`, which writes a chunk's two tables
meanwhile too."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import NamedTuple, Self

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import scipy.sparse as sp

from batch.contract import RECOMMENDATIONS_SCHEMA
from model.base import Recommender
from model.columns import MOVIE_ID, RANK, SCORE, USER_ID
from model.topn import available_cores, select_and_rank


class ChunkLists(NamedTuple):
    """A chunk's candidates (ranks 1..depth) and recommendations (their ranks 1..top_n) as tables of
    `RECOMMENDATIONS_SCHEMA`, rows sorted by (user_id, rank), and the held-out items' ranks (or None)."""

    candidates: pa.Table
    recommendations: pa.Table
    ranks: np.ndarray | None


def lists_table(
    user_ids: np.ndarray,
    item_ids: np.ndarray,
    users: np.ndarray,
    items: np.ndarray,
    best: np.ndarray,
    unrated: np.ndarray,
) -> pa.Table:
    """A chunk's lists as recommendations-schema rows: user_ids, item_ids the raw ids by dense index,
    users (c,) dense indices, items (c, k) and best (c, k) from `Recommender.recommend`, unrated (c,) how
    many of each row are real recommendations."""
    keep = np.arange(items.shape[1])[None, :] < unrated[:, None]
    user_rows, rank_cols = np.nonzero(keep)
    return pa.table(
        {
            USER_ID: pa.array(user_ids[users[user_rows]], pa.int32()),
            RANK: pa.array(rank_cols + 1, pa.int16()),
            MOVIE_ID: pa.array(item_ids[items[keep]], pa.int32()),
            SCORE: pa.array(best[keep], pa.float32()),
        },
        schema=RECOMMENDATIONS_SCHEMA,
    )


def chunk_lists(
    model: Recommender,
    users: np.ndarray,
    rated: sp.csr_matrix,
    top_n: int,
    depth: int,
    user_ids: np.ndarray,
    item_ids: np.ndarray,
    held_items: np.ndarray | None = None,
    scores: np.ndarray | None = None,
) -> ChunkLists:
    """The top `depth` unrated movies of `users` and their first `top_n`, and the full-ranking ranks of the
    users' held-out items from the same scores (`Recommender.recommend_and_rank`).

    Args:
        users: (c,) int dense user indices, ascending.
        rated: (c, n_items) CSR of the same users' rated items, masked before the selection.
        top_n, depth: ranks of the recommendations and of the candidates (depth >= top_n).
        user_ids, item_ids: raw ids by dense index (the output speaks raw ids).
        held_items: (c,) int each user's held-out item (-1 for none; it must be among `rated`), or None.
        scores: (c, n_items) float32 the users' `model.score_users` rows when already scored (writable;
            masked in place), else None.

    Returns:
        `ChunkLists`; a user gets fewer rows only when fewer movies are unrated; ranks (c,) int64 0-based
        (-1 where no held item), or None without `held_items`.
    """
    if scores is None:
        items, best, unrated, ranks = model.recommend_and_rank(users, depth, rated, held_items)
    else:
        items, best, unrated, ranks = select_and_rank(scores, depth, rated, held_items)
    candidates = lists_table(user_ids, item_ids, users, items, best, unrated)
    recommendations = candidates.filter(pc.less_equal(candidates.column(RANK), top_n))
    return ChunkLists(candidates, recommendations, ranks)


def scored_chunks(
    model: Recommender, ranges: Iterable[tuple[int, int]]
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(users (c,) int64, scores (c, n_items) float32) for each user range [start, stop) of `ranges`, in
    order, the scores a writable copy of `model.score_users(users)`. With more than one core to use
    (`available_cores`) the next range is scored on a background thread while the caller works on the
    current one (selection, writing: NumPy and Parquet code that leaves cores idle between scoring calls);
    memory then holds the current and the next range's scores, and, between two ranges, the previous one's
    until the caller lets it go. With one core (a Ray actor reserving one CPU) there is nothing to overlap
    with, and the ranges are scored as the caller asks for them."""

    def score(bounds: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        users = np.arange(*bounds, dtype=np.int64)
        return users, np.array(model.score_users(users), dtype=np.float32, copy=True)

    ranges = list(ranges)
    if available_cores() == 1 or len(ranges) == 1:
        yield from map(score, ranges)
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="scorer") as pool:
        pending: Future | None = None
        for bounds in ranges:
            current = None if pending is None else pending.result()
            pending = pool.submit(score, bounds)
            if current is not None:
                yield current
        if pending is not None:
            yield pending.result()


class ListWriter:
    """Writes each chunk's candidates and recommendations (one row group each) on one background thread,
    so that writing a chunk overlaps scoring the next (Parquet encoding and file writes release the GIL):
    `write` first waits for the previous chunk's write, so at most one chunk's tables wait in memory.
    Leaving the context waits for the last write and re-raises a write's error; the Parquet writers are
    the caller's to close, after this context.
    """

    def __init__(self, candidates: pq.ParquetWriter, recommendations: pq.ParquetWriter) -> None:
        self.candidates, self.recommendations = candidates, recommendations
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="list-writer")
        self.pending: Future | None = None

    def write(self, lists: ChunkLists) -> None:
        """Queue `lists`'s two tables, once the previous chunk is written (re-raising its error)."""
        self.wait()
        self.pending = self.pool.submit(self._write, lists.candidates, lists.recommendations)

    def _write(self, candidates: pa.Table, recommendations: pa.Table) -> None:
        self.candidates.write_table(candidates)
        self.recommendations.write_table(recommendations)

    def wait(self) -> None:
        """Block until the queued chunk is written; re-raises its error."""
        if self.pending is not None:
            pending, self.pending = self.pending, None
            pending.result()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.wait()
        finally:
            self.pool.shutdown(wait=True)
