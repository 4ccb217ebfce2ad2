"""Beyond-accuracy figures of a run's published lists, and their drift against the previous published run.

Computed from the written files (the served arrays of the staged run, movies.parquet, and the previous run's
recommendations through LATEST, in either layout), vectorized over users; memory is one (chunk, k, k) block
for the diversity, never users x movies. All figures are over each user's first `k` (10) movies:

- coverage: share of the catalogue (movies with at least one interaction) in at least one list; also for
  the whole published lists (`coverage_top_n`);
- gini: Gini coefficient of how often each catalogue movie is recommended (0 = evenly, 1 = one movie);
- mean_popularity_rank: mean popularity rank of the recommended movies (1 = the most interacted-with);
- novelty: mean self-information -log2(share of users who interacted with the movie);
- intra_list_diversity: mean over users of the mean pairwise genre distance (1 - Jaccard of the genre sets;
  two movies without genres are at distance 0) within the list;
- drift (against the LATEST run): mean overlap@k per user present in both runs (shared movies / k), the
  share of those users whose top-k list changed (movies or order), and the users only one run has.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from batch.contract import MOVIES, RECOMMENDATIONS, read_latest, run_dir, staged_table_files
from batch.serving_arrays import MOVIE_POS, OFFSETS, USER_IDS, column_array
from model.columns import GENRES, MOVIE_ID, RANK, USER_ID

logger = logging.getLogger(__name__)

K = 10
DIVERSITY_CHUNK = 4096


def top_k_matrix(offsets: np.ndarray, values: np.ndarray, k: int, pad: int) -> np.ndarray:
    """(n_users, k) of each user's first k values (rows offsets[u]:offsets[u+1]), `pad` where shorter."""
    starts, counts = offsets[:-1], np.diff(offsets)
    cols = np.arange(k)
    valid = cols[None, :] < counts[:, None]
    index = np.where(valid, starts[:, None] + cols[None, :], 0)
    return np.where(valid, values[index] if len(values) else pad, pad)


def gini(counts: np.ndarray) -> float:
    """Gini coefficient of non-negative counts (0 when all are equal or all zero)."""
    x = np.sort(np.asarray(counts, dtype=np.float64))
    n, total = len(x), x.sum()
    if n == 0 or total == 0:
        return 0.0
    return float(np.sum((2 * np.arange(1, n + 1) - n - 1) * x) / (n * total))


def genre_matrix(genre_lists: list[list[str]]) -> np.ndarray:
    """(n_movies, n_genres) bool membership, genres in sorted order."""
    names = sorted({g for genres in genre_lists for g in genres})
    index = {name: i for i, name in enumerate(names)}
    matrix = np.zeros((len(genre_lists), max(len(names), 1)), dtype=bool)
    rows = np.repeat(np.arange(len(genre_lists)), [len(g) for g in genre_lists])
    cols = np.fromiter((index[g] for genres in genre_lists for g in genres), dtype=np.int64)
    matrix[rows, cols] = True
    return matrix


def intra_list_diversity(lists: np.ndarray, genres: np.ndarray) -> float:
    """Mean over users (with at least two movies) of the mean pairwise genre distance of their list.

    Args:
        lists: (n_users, k) movie positions, -1 for padding.
        genres: (n_movies, n_genres) bool.
    """
    total, users = 0.0, 0
    for start in range(0, len(lists), DIVERSITY_CHUNK):
        block = lists[start : start + DIVERSITY_CHUNK]
        valid = block >= 0
        g = genres[np.maximum(block, 0)].astype(np.float32) * valid[:, :, None]  # (c, k, n_genres)
        sizes = g.sum(axis=2)
        inter = np.einsum("uig,ujg->uij", g, g)
        union = sizes[:, :, None] + sizes[:, None, :] - inter
        distance = np.where(union > 0, 1.0 - inter / np.maximum(union, 1), 0.0)
        pair = valid[:, :, None] & valid[:, None, :] & ~np.eye(block.shape[1], dtype=bool)[None]
        n_pairs = pair.sum(axis=(1, 2))
        has = n_pairs > 0
        total += float(np.sum((distance * pair).sum(axis=(1, 2))[has] / n_pairs[has]))
        users += int(has.sum())
    return total / users if users else 0.0


def beyond_accuracy(
    run: Path, item_ids: np.ndarray, item_counts: np.ndarray, n_users: int, top_n: int, k: int = K
) -> dict[str, Any]:
    """The figures of the module docstring for the staged or published run directory `run`.

    Args:
        item_ids: (n_items,) raw ids of the catalogue movies; item_counts: (n_items,) their interaction
            counts in the data the published model was trained on; n_users: users of that data.
    """
    movies = pq.read_table(run / MOVIES, columns=[MOVIE_ID, GENRES])
    movie_ids = column_array(movies, MOVIE_ID, np.int32).astype(np.int64)
    order = np.argsort(movie_ids, kind="stable")
    sorted_movies = movie_ids[order]
    genre_lists = movies.column(GENRES).to_pylist()
    genres = genre_matrix([genre_lists[i] or [] for i in order.tolist()])
    offsets = np.load(run / OFFSETS, mmap_mode="r")
    movie_pos = np.load(run / MOVIE_POS, mmap_mode="r")
    lists = top_k_matrix(np.asarray(offsets), movie_pos, k, -1)
    whole = top_k_matrix(np.asarray(offsets), movie_pos, top_n, -1)
    listed = lists[lists >= 0]

    catalogue = np.searchsorted(sorted_movies, item_ids)  # catalogue movie -> movie position
    counts_by_pos = np.zeros(len(sorted_movies), dtype=np.int64)
    counts_by_pos[catalogue] = item_counts
    popularity_rank = np.empty(len(item_ids), dtype=np.int64)
    popularity_rank[np.lexsort((item_ids, -item_counts))] = np.arange(1, len(item_ids) + 1)
    rank_by_pos = np.zeros(len(sorted_movies), dtype=np.int64)
    rank_by_pos[catalogue] = popularity_rank
    recommended = np.bincount(listed, minlength=len(sorted_movies))[catalogue]
    share = np.maximum(counts_by_pos[listed], 1) / max(n_users, 1)
    return {
        "k": k,
        "users": len(lists),
        "catalogue_movies": len(item_ids),
        "coverage": float(np.count_nonzero(recommended) / max(len(item_ids), 1)),
        "coverage_top_n": float(len(np.unique(whole[whole >= 0])) / max(len(item_ids), 1)),
        "gini": gini(recommended),
        "mean_popularity_rank": float(rank_by_pos[listed].mean()) if len(listed) else None,
        "novelty": float(np.mean(-np.log2(share))) if len(listed) else None,
        "intra_list_diversity": intra_list_diversity(lists, genres),
    }


def drift(run: Path, output_dir: Path, k: int = K) -> dict[str, Any]:
    """Top-k lists of the staged run `run` against the run LATEST names (its recommendations, the single
    file or the dataset's parts); `{"previous_run": None, ...}` when there is none or it cannot be read
    (logged, never raised)."""
    previous = read_latest(output_dir)
    if previous is None:
        return {"previous_run": None, "reason": "no published run"}
    try:
        files = staged_table_files(run_dir(output_dir, previous), RECOMMENDATIONS)
        if not files:
            raise FileNotFoundError(f"{run_dir(output_dir, previous)}: no recommendations")
        table = pq.read_table(
            [str(file) for file in files],
            columns=[USER_ID, RANK, MOVIE_ID],
            filters=[(RANK, "<=", k)],
        )
        table = table.sort_by([(USER_ID, "ascending"), (RANK, "ascending")])
        old_users = column_array(table, USER_ID, np.int32).astype(np.int64)
        old_movies = column_array(table, MOVIE_ID, np.int32).astype(np.int64)
    except (OSError, ValueError, KeyError) as exc:
        logger.warning("drift: the LATEST run %s cannot be read (%r); drift not measured", previous, exc)
        return {"previous_run": previous, "reason": f"unreadable: {type(exc).__name__}"}
    old_ids, old_starts = np.unique(old_users, return_index=True)
    old_offsets = np.append(old_starts, len(old_users))
    old = top_k_matrix(old_offsets, old_movies, k, -2)

    movies = pq.read_table(run / MOVIES, columns=[MOVIE_ID])
    sorted_movies = np.sort(column_array(movies, MOVIE_ID, np.int32).astype(np.int64))
    new_ids = np.load(run / USER_IDS)
    positions = top_k_matrix(np.load(run / OFFSETS), np.load(run / MOVIE_POS, mmap_mode="r"), k, -1)
    new = np.where(positions >= 0, sorted_movies[np.maximum(positions, 0)], -1)

    both, in_new, in_old = np.intersect1d(new_ids, old_ids, assume_unique=True, return_indices=True)
    a, b = new[in_new], old[in_old]
    shared = (a[:, :, None] == b[:, None, :]).any(axis=2).sum(axis=1)
    listed = np.maximum((a >= 0).sum(axis=1), 1)
    changed = np.any(np.where(a >= 0, a, -2) != b, axis=1)
    return {
        "previous_run": previous,
        "k": k,
        "users_compared": len(both),
        "mean_overlap": float(np.mean(shared / listed)) if len(both) else None,
        "changed_share": float(np.mean(changed)) if len(both) else None,
        "new_users": int(len(new_ids) - len(both)),
        "gone_users": int(len(old_ids) - len(both)),
    }
