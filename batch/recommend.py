"""One chunk of users' top-N lists as a table of the output contract, shared by both executors (the local
chunk loop in `batch.job` and the Ray shard scorers in `batch.distributed`), so their rows are built the
same way."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import scipy.sparse as sp

from batch.contract import RECOMMENDATIONS_SCHEMA
from model.base import Recommender
from model.columns import MOVIE_ID, RANK, SCORE, USER_ID


def recommendation_table(
    model: Recommender,
    users: np.ndarray,
    rated: sp.csr_matrix,
    top_n: int,
    user_ids: np.ndarray,
    item_ids: np.ndarray,
    held_items: np.ndarray | None = None,
) -> tuple[pa.Table, np.ndarray | None]:
    """The top `top_n` unrated movies of `users`, rows sorted by (user_id, rank), and the full-ranking
    ranks of the users' held-out items from the same scores (`Recommender.recommend_and_rank`).

    Args:
        users: (c,) int dense user indices, ascending.
        rated: (c, n_items) CSR of the same users' rated items, masked before the selection.
        user_ids, item_ids: raw ids by dense index (the output speaks raw ids).
        held_items: (c,) int each user's held-out item (-1 for none; it must be among `rated`), or None.

    Returns:
        A table of `RECOMMENDATIONS_SCHEMA` (a user gets fewer than `top_n` rows only when fewer movies
        are unrated), and (c,) int64 0-based ranks of the held items (-1 where none), or None without
        `held_items`.
    """
    items, best, unrated, ranks = model.recommend_and_rank(users, top_n, rated, held_items)
    keep = np.arange(items.shape[1])[None, :] < unrated[:, None]
    user_rows, rank_cols = np.nonzero(keep)
    table = pa.table(
        {
            USER_ID: pa.array(user_ids[users[user_rows]], pa.int32()),
            RANK: pa.array(rank_cols + 1, pa.int16()),
            MOVIE_ID: pa.array(item_ids[items[keep]], pa.int32()),
            SCORE: pa.array(best[keep], pa.float32()),
        },
        schema=RECOMMENDATIONS_SCHEMA,
    )
    return table, ranks
