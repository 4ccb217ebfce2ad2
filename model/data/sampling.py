"""Negative sampling, fully vectorized.

- `sample_candidates`: k distinct negatives per user for the sampled evaluation protocol (never an item the
  user interacted with anywhere), uniform without replacement.
- `NegativeSampler`: fresh training negatives every epoch (never a training positive of that user), plus
  the positives, as flat arrays ready for a trainer; optionally each user's newest positives count more
  (`recent_fraction`, `recent_weight`: recency weighting, see `recent_mask`), and optionally negatives
  drawn by item popularity (`negative_popularity`, see `popularity_weights`) instead of uniformly.
- `weighted_csr`: the same recency weighting for matrix models (iALS, eALS, EASE^R): the training matrix
  with a larger value at each user's newest positives.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from model.data.interactions import Interactions
from model.data.positives import PositiveLookup

# Cells (rows x draws) one rejection round of `distinct_negatives` may use: ~50 MB of temporaries.
_CANDIDATE_BUDGET = 1 << 22


def sample_negatives(
    user_idx: np.ndarray,
    lookup: PositiveLookup,
    n_items: int,
    rng: np.random.Generator,
    cumulative_weights: np.ndarray | None = None,
) -> np.ndarray:
    """One negative item per entry of `user_idx`, by rejection; (n,) int32.

    Uniform over the items, or, given `cumulative_weights` ((n_items,) cumulative sums of positive item
    weights), each item with probability proportional to its weight.
    """

    def draw(size: int) -> np.ndarray:
        if cumulative_weights is None:
            return rng.integers(0, n_items, size=size, dtype=np.int32)
        u = rng.random(size) * cumulative_weights[-1]
        return np.searchsorted(cumulative_weights, u, side="right").astype(np.int32)

    items = draw(user_idx.shape[0])
    todo = np.flatnonzero(lookup.contains(user_idx, items))
    while todo.size:
        items[todo] = draw(todo.size)
        todo = todo[lookup.contains(user_idx[todo], items[todo])]
    return items


def popularity_weights(interactions: Interactions, exponent: float) -> np.ndarray | None:
    """(n_items,) float64 cumulative weights (item training count + 1) ** `exponent` for
    `sample_negatives`; None for exponent 0 (uniform). The + 1 keeps items without a training positive
    drawable."""
    if exponent < 0.0:
        raise ValueError(f"exponent must be >= 0, got {exponent}")
    if exponent == 0.0:
        return None
    return np.cumsum((interactions.item_counts() + 1.0) ** exponent)


def recency_rank(interactions: Interactions) -> np.ndarray:
    """(n,) int64: each row's rank among its user's rows counted from the newest (0 = the newest).

    Relies on the order `Interactions` keeps: a user's rows oldest first (they need not be contiguous).
    """
    order = np.argsort(interactions.user_idx, kind="stable")
    counts = interactions.user_counts()
    users = interactions.user_idx[order]
    position = np.arange(order.shape[0]) - (np.cumsum(counts) - counts)[users]
    rank = np.empty(order.shape[0], dtype=np.int64)
    rank[order] = counts[users] - 1 - position
    return rank


def recent_mask(interactions: Interactions, fraction: float) -> np.ndarray:
    """(n,) bool: True for each user's newest `ceil(fraction * n_u)` rows (n_u = the user's rows).

    A fraction of 0 marks nothing; any positive fraction marks at least each user's newest row.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    counts = interactions.user_counts()[interactions.user_idx]
    return recency_rank(interactions) < np.ceil(fraction * counts)


def recency_label(fraction: float, weight: float) -> str:
    """A recency setting as text: "newest 10% x6", or "off" when it marks nothing or weighs by 1."""
    return f"newest {fraction:.0%} x{weight:g}" if fraction > 0 and weight != 1 else "off"


def weighted_csr(
    interactions: Interactions, recent_fraction: float = 0.0, recent_weight: float = 1.0
) -> sp.csr_matrix:
    """(n_users, n_items) float32 CSR: `recent_weight` at each user's newest `recent_fraction` of pairs
    (`recent_mask`), 1.0 at every other pair, rows sorted.

    With nothing marked (fraction 0) or `recent_weight` 1 it is exactly `interactions.to_csr()`. A pair
    listed more than once is recent if any of its rows is.
    """
    if recent_weight <= 0.0:
        raise ValueError(f"recent_weight must be > 0, got {recent_weight}")
    mask = recent_mask(interactions, recent_fraction)
    matrix = interactions.to_csr()
    if recent_weight == 1.0 or not mask.any():
        return matrix
    recent = Interactions(
        interactions.user_idx[mask], interactions.item_idx[mask], interactions.n_users, interactions.n_items
    ).to_csr()
    weighted = (matrix + np.float32(recent_weight - 1.0) * recent).astype(np.float32).tocsr()
    weighted.sort_indices()
    return weighted


class NegativeSampler:
    """Training examples for one epoch: every positive plus `num_negatives` fresh negatives for it.

    With recency weighting, each user's newest `recent_fraction` of positives (`recent_mask`) count
    `recent_weight` times: they appear that many times per epoch, each copy with its own negatives, so the
    log loss weighs them (and their negatives) `recent_weight`-fold.

    Args:
        train: the training positives (and nothing else: validation and test items stay unseen), a user's
            rows oldest first.
        num_negatives: negatives per positive (the paper's default is 4).
        seed: base seed; epoch e draws from `default_rng([seed, e])`, so any epoch is reproducible alone.
        recent_fraction: share of each user's newest positives that `recent_weight` applies to.
        recent_weight: how many times each of those counts (1 = no recency weighting).
        negative_popularity: negatives drawn with probability proportional to (the item's training count
            + 1) ** this exponent (`popularity_weights`); 0 = uniform.
    """

    def __init__(
        self,
        train: Interactions,
        num_negatives: int = 4,
        seed: int = 0,
        recent_fraction: float = 0.0,
        recent_weight: int = 1,
        negative_popularity: float = 0.0,
    ) -> None:
        if num_negatives < 0:
            raise ValueError("num_negatives must be >= 0")
        if recent_weight < 1:
            raise ValueError("recent_weight must be >= 1")
        full = np.flatnonzero(train.user_counts() >= train.n_items)
        if full.size and num_negatives:
            raise ValueError(f"user_idx {int(full[0])} interacted with every item: no negative exists")
        self.train = train
        self.num_negatives = num_negatives
        self.seed = seed
        self._lookup = PositiveLookup(train)
        self._weights = popularity_weights(train, negative_popularity)
        rows = np.arange(len(train))
        if recent_weight > 1 and recent_fraction > 0.0:
            recent = np.flatnonzero(recent_mask(train, recent_fraction))
            rows = np.concatenate([rows, np.tile(recent, recent_weight - 1)])
        self._pos_users = train.user_idx[rows].astype(np.int32, copy=False)
        self._pos_items = train.item_idx[rows].astype(np.int32, copy=False)

    def epoch(self, epoch: int, grouped: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Examples for `epoch` (unshuffled; the trainer shuffles): positives first then negatives, or with
        `grouped` each positive followed by its own negatives (groups of 1 + num_negatives rows, for the
        softmax loss). Both layouts hold the same examples (the same draws).

        Returns:
            (user_idx int32 (m,), item_idx int32 (m,), label float32 (m,)) with m = p * (1 + num_negatives),
            p = len(train) plus the extra copies of recent positives; label is 1 for positives, 0 for
            negatives.
        """
        rng = np.random.default_rng([self.seed, epoch])
        n_pos, group = self._pos_users.shape[0], 1 + self.num_negatives
        neg_users = np.repeat(self._pos_users, self.num_negatives)
        neg_items = sample_negatives(neg_users, self._lookup, self.train.n_items, rng, self._weights)
        if grouped:
            users = np.repeat(self._pos_users, group)
            items = np.empty((n_pos, group), dtype=np.int32)
            items[:, 0] = self._pos_items
            items[:, 1:] = neg_items.reshape(n_pos, self.num_negatives)
            labels = np.zeros((n_pos, group), dtype=np.float32)
            labels[:, 0] = 1.0
            return users, items.ravel(), labels.ravel()
        users = np.concatenate([self._pos_users, neg_users])
        items = np.concatenate([self._pos_items, neg_items])
        labels = np.zeros(users.shape[0], dtype=np.float32)
        labels[:n_pos] = 1.0
        return users, items, labels


def sample_candidates(
    user_idx: np.ndarray,
    positive_item: np.ndarray,
    known: sp.csr_matrix,
    n_negatives: int,
    seed: int,
    chunk_users: int = 16384,
    lookup: PositiveLookup | None = None,
) -> np.ndarray:
    """Evaluation candidates: the held-out positive in column 0, then `n_negatives` distinct negatives.

    Negatives are uniform without replacement over the items the user never interacted with (`known`,
    (n_users, n_items) CSR of every interaction, all splits): each row keeps the first `n_negatives`
    distinct unknown items of a stream of uniform draws (`distinct_negatives`). Work and memory are
    O(users x n_negatives), never O(users x items).

    Args:
        user_idx, positive_item: (n,) int, the users and their held-out items.
        chunk_users: users drawn together (memory: a few chunk_users x n_negatives int arrays).
        lookup: `PositiveLookup.from_csr(known)`, when the caller already has it.

    Returns:
        (n, 1 + n_negatives) int32; the same for the same seed and chunk_users, whether or not `lookup` is
        given.
    """
    n_items = known.shape[1]
    unknown = n_items - np.diff(known.indptr)[user_idx]
    short = np.flatnonzero(unknown < n_negatives)
    if short.size:
        raise ValueError(
            f"user_idx {int(user_idx[short[0]])} has fewer than {n_negatives} items left to sample "
            "negatives from"
        )
    lookup = lookup if lookup is not None else PositiveLookup.from_csr(known)
    rng = np.random.default_rng(seed)
    out = np.empty((user_idx.shape[0], 1 + n_negatives), dtype=np.int32)
    out[:, 0] = positive_item
    for start in range(0, user_idx.shape[0], chunk_users):
        stop = start + chunk_users
        out[start:stop, 1:] = distinct_negatives(
            user_idx[start:stop], unknown[start:stop], lookup, n_negatives, rng
        )
    return out


def distinct_negatives(
    user_idx: np.ndarray, unknown: np.ndarray, lookup: PositiveLookup, k: int, rng: np.random.Generator
) -> np.ndarray:
    """k distinct items per user, uniform without replacement over the items `lookup` does not hold.

    Vectorized rejection in rounds: every unfinished row draws a block of uniform items, items the user
    interacted with and repeats of an item earlier in the row are rejected, the first k survivors stay, and
    only the rows still short draw again. A row is the first k distinct unknown items of an i.i.d. uniform
    stream, which is a uniform random k-subset (in random order).

    Args:
        user_idx: (n,) int users.
        unknown: (n,) int number of items each user has no interaction with (>= k).
        lookup: the known interactions.

    Returns:
        (n, k) int32.
    """
    n_items = lookup.n_items
    picked = np.full((user_idx.shape[0], k), -1, dtype=np.int32)  # each row filled from the left
    filled = np.zeros(user_idx.shape[0], dtype=np.int64)
    todo = np.flatnonzero(filled < k)
    while todo.size:
        need = k - filled[todo]
        # Draws that give each row its missing items in expectation (a draw is new with probability
        # (unknown - filled) / n_items), with a margin; at most _CANDIDATE_BUDGET cells per round.
        fresh = (unknown[todo] - filled[todo]) / n_items
        wanted = int(np.ceil((need / fresh).max() * 1.2)) + 8
        width = min(wanted, max(2 * k, _CANDIDATE_BUDGET // todo.size))
        draws = rng.integers(0, n_items, size=(todo.size, width), dtype=np.int32)
        cand = np.concatenate([picked[todo], draws], axis=1)
        valid = cand >= 0
        valid[:, k:] = ~lookup.contains(np.repeat(user_idx[todo], width), draws.ravel()).reshape(draws.shape)
        valid &= ~_repeats(cand)
        rank = np.cumsum(valid, axis=1)
        rows, cols = np.nonzero(valid & (rank <= k))
        block = np.full((todo.size, k), -1, dtype=np.int32)
        block[rows, rank[rows, cols] - 1] = cand[rows, cols]
        picked[todo] = block
        filled[todo] = np.minimum(rank[:, -1], k)
        todo = todo[filled[todo] < k]
    return picked


def _repeats(values: np.ndarray) -> np.ndarray:
    """(r, c) bool: True where the value already occurs earlier in its row."""
    order = np.argsort(values, axis=1, kind="stable")
    ordered = np.take_along_axis(values, order, axis=1)
    repeat = np.zeros(values.shape, dtype=bool)
    repeat[:, 1:] = ordered[:, 1:] == ordered[:, :-1]
    out = np.empty_like(repeat)
    np.put_along_axis(out, order, repeat, axis=1)
    return out
