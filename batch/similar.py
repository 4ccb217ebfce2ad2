"""Similar movies and recent history, precomputed by the job for the lookup service.

Similar movies are the cosine of item vectors, from one of two sources (`similar_source`):
- `embedding`: the published model's item embeddings (`Recommender.item_embeddings`; NCF: GMF's);
- `cooccurrence`: the movies' interaction columns over every interaction the published model was trained
  on, sim(i, j) = |U_i ∩ U_j| / sqrt(|U_i| |U_j|), U_i the users who rated movie i; it needs only the
  interactions, so it works for every model, and is what models without embeddings use.
Which one, and K, were chosen on the fold-in HR@10 of the ML-1M validation items (bench/foldin.py,
docs/beyond-top-n.md). Computed `chunk_items` movies at a time: one (chunk_items, n_movies) block of
similarities, its top K per row kept, never the whole movies x movies matrix.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import scipy.sparse as sp

from model.columns import MOVIE_ID, RANK, SCORE, SIMILAR_MOVIE_ID, TIMESTAMP, USER_ID
from model.data import Dataset
from model.data.interactions import Interactions
from model.topn import top_n

logger = logging.getLogger(__name__)


def item_vectors(interactions: Interactions) -> sp.csr_matrix:
    """(n_items, n_users) binary float32 CSR: each movie's column of the interaction matrix, as a row."""
    csr = interactions.to_csr().astype(np.float32)
    csr.data[:] = 1.0
    return csr.T.tocsr()


def cosine_top_k(
    vectors: sp.csr_matrix | np.ndarray, k: int, chunk_items: int
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The k most cosine-similar other rows of each row of `vectors`, one block of rows at a time.

    Args:
        vectors: (n_items, d) sparse or dense; a row of zeros has no neighbours.
        k: neighbours per row.
        chunk_items: rows per block (memory: a (chunk_items, n_items) float32 block plus the sparse
            product it comes from).

    Yields:
        (rows (c,) int64, neighbours (c, k') int64, scores (c, k') float32) per block, best first (ties:
        lower index), k' = min(k, n_items - 1); only entries with a score > 0 are real neighbours (the
        others score -inf).
    """
    n_items = vectors.shape[0]
    if sp.issparse(vectors):
        norms = np.sqrt(np.asarray(vectors.multiply(vectors).sum(axis=1)).ravel())
    else:
        norms = np.linalg.norm(vectors, axis=1)
    inverse = np.divide(1.0, norms, out=np.zeros_like(norms, dtype=np.float64), where=norms > 0)
    inverse = inverse.astype(np.float32)
    transposed = vectors.T.tocsc() if sp.issparse(vectors) else vectors.T
    kk = min(k, max(n_items - 1, 0))
    for start in range(0, n_items, chunk_items):
        rows = np.arange(start, min(start + chunk_items, n_items))
        block = vectors[rows] @ transposed
        block = block.toarray() if sp.issparse(block) else np.asarray(block)
        block = block.astype(np.float32, copy=False)
        block *= inverse[rows, None]
        block *= inverse[None, :]
        block[np.arange(len(rows)), rows] = -np.inf  # never the movie itself
        block[block <= 0] = -np.inf
        if kk == 0:
            yield rows, np.empty((len(rows), 0), np.int64), np.empty((len(rows), 0), np.float32)
            continue
        items, scores = top_n(block, kk)
        yield rows, items, scores


def similar_movies_batches(
    vectors: sp.csr_matrix | np.ndarray, item_ids: np.ndarray, k: int, chunk_items: int
) -> Iterator[pa.Table]:
    """similar_movies.parquet from (n_items, d) item vectors, one table per block of movies (raw ids,
    ranks 1..k', score > 0 only)."""
    for rows, items, scores in cosine_top_k(vectors, k, chunk_items):
        keep = np.isfinite(scores)  # the -inf entries are not neighbours; they are always at the end
        row, col = np.nonzero(keep)
        yield pa.table(
            {
                MOVIE_ID: pa.array(item_ids[rows[row]], pa.int32()),
                RANK: pa.array(col + 1, pa.int16()),
                SIMILAR_MOVIE_ID: pa.array(item_ids[items[keep]], pa.int32()),
                SCORE: pa.array(scores[keep], pa.float32()),
            }
        )


def history_table(dataset: Dataset, depth: int) -> pa.Table:
    """history.parquet: each user's `depth` newest interactions, rank 1 = newest (rows of `dataset` are
    sorted by user, timestamp, file position), sorted by (user_id, rank)."""
    counts = np.bincount(dataset.user_idx, minlength=dataset.n_users)
    ends = np.cumsum(counts)
    take = np.minimum(counts, depth)
    users = np.repeat(np.arange(dataset.n_users), take)
    within = np.arange(int(take.sum())) - np.repeat(np.cumsum(take) - take, take)
    rows = ends[users] - 1 - within
    return pa.table(
        {
            USER_ID: pa.array(dataset.user_ids[users], pa.int32()),
            RANK: pa.array(within + 1, pa.int16()),
            MOVIE_ID: pa.array(dataset.item_ids[dataset.item_idx[rows]], pa.int32()),
            TIMESTAMP: pa.array(dataset.timestamp[rows], pa.int64()),
        }
    )
