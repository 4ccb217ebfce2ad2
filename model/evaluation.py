"""Leave-one-out evaluation behind one `Evaluator`, two protocols:

- `sampled`: the held-out positive against its 99 sampled negatives (He et al. 2017);
- `full`: the held-out positive against every item the user has no other interaction with.

Both report HR@k and NDCG@k; `full` adds Recall@`recall_k` (with one held-out item, the hit at
`recall_k`) and MRR (over the whole ranking). `Evaluator.evaluate_per_user` also returns each metric per
evaluated user, (n,) float64 arrays whose means are the figures, from the same scoring pass.

Scores are computed in batched calls (one `score` call per chunk of users for `sampled`, one
`score_users` call per chunk for `full`), never one predict call per user.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import scipy.sparse as sp

from model.base import Recommender
from model.data.split import HeldOut, LeaveOneOutSplit
from model.metrics import (
    average,
    full_rank,
    hits_at,
    ndcg_gains_at,
    positive_rank,
    recalls_at,
    reciprocal_ranks,
)

logger = logging.getLogger(__name__)

PROTOCOLS = ("sampled", "full")
PerUser = dict[str, dict[str, np.ndarray]]


def sampled_ranks(model: Recommender, held: HeldOut, users_per_call: int = 16384) -> np.ndarray:
    """(n,) int64 rank of each held-out positive among its candidates (sampled protocol).

    Scores `users_per_call` users' candidates (users_per_call * 100 pairs) per `model.score` call. Needs
    only the held-out items and their candidates, not the split, so a trainer can call it on validation.
    """
    ranks = np.empty(len(held), dtype=np.int64)
    width = held.candidates.shape[1]
    for start in range(0, len(held), users_per_call):
        cand = held.candidates[start : start + users_per_call]
        users = np.repeat(held.user_idx[start : start + users_per_call], width)
        scores = model.score(users, cand.ravel()).reshape(cand.shape)
        ranks[start : start + users_per_call] = positive_rank(scores)
    return ranks


def _row_mask(rows: sp.csr_matrix) -> np.ndarray:
    """(r, n_items) bool, True at the stored cells of a (r, n_items) CSR block."""
    mask = np.zeros(rows.shape, dtype=bool)
    mask[np.repeat(np.arange(rows.shape[0]), np.diff(rows.indptr)), rows.indices] = True
    return mask


class Evaluator:
    """Computes HR@k and NDCG@k (both protocols), Recall@recall_k and MRR (full ranking) of a model on the
    validation or test items of a split.

    Args:
        split: the leave-one-out split (candidates and known interactions).
        k: cut-off of HR and NDCG (10 in the paper).
        protocols: any of "sampled", "full".
        chunk_users: users per batched scoring call (memory: chunk_users * n_items float32 for `full`).
        recall_k: cut-off of Recall on the full ranking.
    """

    def __init__(
        self,
        split: LeaveOneOutSplit,
        k: int = 10,
        protocols: tuple[str, ...] = PROTOCOLS,
        chunk_users: int = 1024,
        recall_k: int = 20,
    ) -> None:
        unknown = set(protocols) - set(PROTOCOLS)
        if unknown or not protocols:
            raise ValueError(f"protocols must be a non-empty subset of {PROTOCOLS}, got {protocols}")
        self.split = split
        self.k = k
        self.recall_k = recall_k
        self.protocols = tuple(protocols)
        self.chunk_users = chunk_users

    def sampled_ranks(self, model: Recommender, held: HeldOut) -> np.ndarray:
        """(n,) int64 rank of each positive among its 1 + 99 candidates."""
        return sampled_ranks(model, held, users_per_call=self.chunk_users * 16)

    def full_ranks(self, model: Recommender, held: HeldOut) -> np.ndarray:
        """(n,) int64 rank of each positive among every item the user has not interacted with.

        One chunk of `chunk_users` users at a time: their (chunk, n_items) scores and a (chunk, n_items)
        bool mask of their known items, set from the CSR rows of `split.known`.
        """
        ranks = np.empty(len(held), dtype=np.int64)
        known = self.split.known
        for start in range(0, len(held), self.chunk_users):
            users = held.user_idx[start : start + self.chunk_users]
            scores = model.score_users(users)
            excluded = _row_mask(known[users])
            ranks[start : start + self.chunk_users] = full_rank(
                scores, held.item_idx[start : start + self.chunk_users], excluded
            )
        return ranks

    def evaluate(
        self, model: Recommender, which: str = "validation", protocols: tuple[str, ...] | None = None
    ) -> dict[str, dict[str, float]]:
        """Metrics of `model` on the `which` ("validation" or "test") items.

        Args:
            protocols: a subset of the configured protocols (None: all of them).

        Returns:
            {protocol: {"hr@k", "ndcg@k", "seconds"}} for each protocol, "full" with "recall@recall_k" and
            "mrr" as well (floats).
        """
        return self.evaluate_per_user(model, which, protocols)[0]

    def evaluate_per_user(
        self, model: Recommender, which: str = "validation", protocols: tuple[str, ...] | None = None
    ) -> tuple[dict[str, dict[str, float]], PerUser]:
        """`evaluate`'s figures and, from the same scoring pass, each metric per evaluated user.

        Returns:
            (figures as `evaluate` returns them, {protocol: {metric: (n,) float64}}), the arrays in the
            order of `split.held_out(which).user_idx`, each figure the mean of its array.
        """
        held = self.split.held_out(which)
        figures: dict[str, dict[str, float]] = {}
        per_user: PerUser = {}
        for protocol in self.protocols if protocols is None else protocols:
            start = time.perf_counter()
            ranks = self.sampled_ranks(model, held) if protocol == "sampled" else self.full_ranks(model, held)
            seconds = time.perf_counter() - start
            per_user[protocol] = self.per_user(ranks, protocol)
            figures[protocol] = self._means(per_user[protocol], seconds)
            logger.debug("%s %s: %d users in %.2fs", which, protocol, len(held), seconds)
        return figures, per_user

    def per_user(self, ranks: np.ndarray, protocol: str = "sampled") -> dict[str, np.ndarray]:
        """{metric: (n,) float64} of (n,) 0-based ranks under `protocol` (its metrics as in `evaluate`)."""
        values = {f"hr@{self.k}": hits_at(ranks, self.k), f"ndcg@{self.k}": ndcg_gains_at(ranks, self.k)}
        if protocol == "full":
            values[f"recall@{self.recall_k}"] = recalls_at(ranks, self.recall_k)
            values["mrr"] = reciprocal_ranks(ranks)
        return values

    def figures(self, ranks: np.ndarray, seconds: float, protocol: str = "sampled") -> dict[str, float]:
        """The figures of (n,) 0-based ranks under `protocol` (as `evaluate` reports them) and "seconds"."""
        return self._means(self.per_user(ranks, protocol), seconds)

    @staticmethod
    def _means(per_user: dict[str, np.ndarray], seconds: float) -> dict[str, float]:
        return {**{name: average(v) for name, v in per_user.items()}, "seconds": round(seconds, 4)}
