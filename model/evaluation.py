"""Leave-one-out evaluation behind one `Evaluator`, two protocols:

- `sampled`: the held-out positive against its 99 sampled negatives (He et al. 2017);
- `full`: the held-out positive against every item the user has no other interaction with.

Scores are computed in batched calls (one `score` call per chunk of users for `sampled`, one
`score_users` call per chunk for `full`), never one predict call per user.
"""

from __future__ import annotations

import time

import numpy as np
import scipy.sparse as sp

from model.base import Recommender
from model.data.split import HeldOut, LeaveOneOutSplit
from model.metrics import full_rank, hit_rate_at, ndcg_at, positive_rank

PROTOCOLS = ("sampled", "full")


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
    """Computes HR@k and NDCG@k of a model on the validation or test items of a split.

    Args:
        split: the leave-one-out split (candidates and known interactions).
        k: cut-off (10 in the paper).
        protocols: any of "sampled", "full".
        chunk_users: users per batched scoring call (memory: chunk_users * n_items float32 for `full`).
    """

    def __init__(
        self,
        split: LeaveOneOutSplit,
        k: int = 10,
        protocols: tuple[str, ...] = PROTOCOLS,
        chunk_users: int = 1024,
    ) -> None:
        unknown = set(protocols) - set(PROTOCOLS)
        if unknown or not protocols:
            raise ValueError(f"protocols must be a non-empty subset of {PROTOCOLS}, got {protocols}")
        self.split = split
        self.k = k
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
            {protocol: {"hr@k": float, "ndcg@k": float, "seconds": float}} for each protocol.
        """
        held = self.split.held_out(which)
        out: dict[str, dict[str, float]] = {}
        for protocol in self.protocols if protocols is None else protocols:
            start = time.perf_counter()
            ranks = self.sampled_ranks(model, held) if protocol == "sampled" else self.full_ranks(model, held)
            out[protocol] = self.figures(ranks, time.perf_counter() - start)
        return out

    def figures(self, ranks: np.ndarray, seconds: float) -> dict[str, float]:
        """{"hr@k", "ndcg@k", "seconds"} of (n,) 0-based ranks."""
        return {
            f"hr@{self.k}": hit_rate_at(ranks, self.k),
            f"ndcg@{self.k}": ndcg_at(ranks, self.k),
            "seconds": round(seconds, 4),
        }
