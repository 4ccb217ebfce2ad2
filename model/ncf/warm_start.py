"""Warm start: the starting parameters of a new NCF fit from a previously trained model of the same
architecture, matched by raw ids (the id maps saved beside the model): a user or movie known to both keeps
its trained embedding rows, a new one gets fresh rows (`init_params`), and the dense layers are copied.
"""

from __future__ import annotations

import logging

import numpy as np

from model.ncf.config import NCFConfig
from model.ncf.params import Params, check_params, init_params

logger = logging.getLogger(__name__)


def _matches(old_ids: np.ndarray, new_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(new positions, old positions) of the raw ids present in both (old_ids need not be sorted)."""
    order = np.argsort(old_ids, kind="stable")
    sorted_old = np.asarray(old_ids)[order]
    pos = np.searchsorted(sorted_old, new_ids)
    clipped = np.minimum(pos, max(len(sorted_old) - 1, 0))
    found = (pos < len(sorted_old)) & (sorted_old[clipped] == new_ids) if len(sorted_old) else pos < 0
    return np.flatnonzero(found), order[clipped[found]]


def warm_params(
    previous: Params,
    config: NCFConfig,
    old_ids: tuple[np.ndarray, np.ndarray],
    new_ids: tuple[np.ndarray, np.ndarray],
    seed: int,
) -> Params:
    """Starting parameters for `config` over the new users and movies from `previous`.

    Args:
        previous: a trained model's parameters for `config` (names and shapes of `model.ncf.params`).
        old_ids: (user_ids (n_old_users,), item_ids (n_old_items,)) raw ids by the previous dense index.
        new_ids: the same for the data the new fit trains on.
        seed: the seed of the fresh rows of new users and movies.

    Returns:
        float32 parameters for (len(new_ids[0]), len(new_ids[1])) users and movies.

    Raises:
        ValueError: `previous` does not fit `config` over the old ids (another architecture).
    """
    old_users, old_items = (np.asarray(ids, dtype=np.int64) for ids in old_ids)
    new_users, new_items = (np.asarray(ids, dtype=np.int64) for ids in new_ids)
    check_params(previous, config, len(old_users), len(old_items))
    params = init_params(config, len(new_users), len(new_items), seed)
    rows = {"user": _matches(old_users, new_users), "item": _matches(old_items, new_items)}
    for name, value in params.items():
        if name.endswith("user_embedding") or name.endswith("item_embedding"):
            new_pos, old_pos = rows["user" if name.endswith("user_embedding") else "item"]
            value[new_pos] = previous[name][old_pos]
        else:
            params[name] = np.array(previous[name], dtype=np.float32)
    logger.info(
        "warm start: %d of %d users and %d of %d movies carried over",
        len(rows["user"][0]),
        len(new_users),
        len(rows["item"][0]),
        len(new_items),
    )
    return params
