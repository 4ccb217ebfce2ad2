"""Leave-one-out split: each user's newest interaction is the test item, the second-newest the validation
item (for model selection), the rest train.

Order is (timestamp, position in the file): on equal timestamps the rating that comes later in the file is
the newer one. Users with one interaction only train; with two, they get a test item but no validation
item. For the NCF layout the test items (and their 99 negatives) are the authors' own, and validation is
drawn from the training part the same way.

Full-ranking evaluation ranks a held-out item against every item the user has no interaction with at all
(the other held-out item is excluded too, it is a known positive, not a negative).

`inner_leave_one_out` is the same split one step back in time (the data without each user's newest
interaction), for comparing pipeline choices such as the refit on a pseudo-test instead of the test item.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from model.data.interactions import Interactions
from model.data.loader import Dataset
from model.data.positives import PositiveLookup
from model.data.sampling import sample_candidates

logger = logging.getLogger(__name__)

N_NEGATIVES = 99


@dataclass(frozen=True)
class HeldOut:
    """One held-out positive per evaluated user.

    Attributes:
        user_idx: (n,) int32 users evaluated.
        item_idx: (n,) int32 their held-out item.
        candidates: (n, 1 + 99) int32, the held-out item in column 0 then sampled negatives.
    """

    user_idx: np.ndarray
    item_idx: np.ndarray
    candidates: np.ndarray

    def __len__(self) -> int:
        return int(self.user_idx.shape[0])


@dataclass(frozen=True)
class LeaveOneOutSplit:
    """Train / validation / test, all as dense indices.

    Attributes:
        train: training positives (never contains a validation or test item).
        validation: the second-newest item per user (model selection only).
        test: the newest item per user (final report only).
        known: (n_users, n_items) CSR of every interaction in the data set; used to exclude known positives
            from negatives and from full ranking.
    """

    train: Interactions
    validation: HeldOut
    test: HeldOut
    known: sp.csr_matrix

    @property
    def n_users(self) -> int:
        return self.train.n_users

    @property
    def n_items(self) -> int:
        return self.train.n_items

    def held_out(self, which: str) -> HeldOut:
        """`"validation"` or `"test"`."""
        if which not in ("validation", "test"):
            raise ValueError(f"split must be 'validation' or 'test', got {which!r}")
        return self.validation if which == "validation" else self.test

    def train_with_validation(self) -> Interactions:
        """Training positives plus each user's validation item (never the test item): what a refit trains on
        before the test item is scored."""
        train, held = self.train, self.validation
        return Interactions(
            np.concatenate([train.user_idx, held.user_idx]),
            np.concatenate([train.item_idx, held.item_idx]),
            train.n_users,
            train.n_items,
        )


def _last_positions(user_idx: np.ndarray, n_users: int) -> tuple[np.ndarray, np.ndarray]:
    """For rows sorted by user then recency: (end position per user, count per user)."""
    counts = np.bincount(user_idx, minlength=n_users)
    ends = np.cumsum(counts)
    return ends, counts


def leave_one_out(dataset: Dataset, seed: int = 0, n_negatives: int = N_NEGATIVES) -> LeaveOneOutSplit:
    """Split `dataset` (rows sorted by user, timestamp, file position) and sample evaluation candidates.

    Candidate negatives use seeds `seed` (test) and `seed + 1` (validation).
    """
    n_users, n_items = dataset.n_users, dataset.n_items
    known = dataset.interactions().to_csr()
    lookup = PositiveLookup.from_csr(known)
    ends, counts = _last_positions(dataset.user_idx, n_users)
    keep = np.ones(dataset.n_interactions, dtype=bool)

    if dataset.fixed_test is not None:
        test = _fixed_test(dataset)
        # Remove the test pairs from the rows, then draw validation from what is left.
        test_keys = test.user_idx.astype(np.int64) * n_items + test.item_idx
        row_keys = dataset.user_idx.astype(np.int64) * n_items + dataset.item_idx
        keep &= ~np.isin(row_keys, test_keys)
        users, items = dataset.user_idx[keep], dataset.item_idx[keep]
        ends, counts = _last_positions(users, n_users)
        keep2 = np.ones(users.shape[0], dtype=bool)
        val_users = np.flatnonzero(counts >= 2).astype(np.int32)
        val_rows = ends[val_users] - 1
        keep2[val_rows] = False
        val_items = items[val_rows]
        train = Interactions(users[keep2], items[keep2], n_users, n_items)
    else:
        test_users = np.flatnonzero(counts >= 2).astype(np.int32)
        test_rows = ends[test_users] - 1
        val_users = np.flatnonzero(counts >= 3).astype(np.int32)
        val_rows = ends[val_users] - 2
        keep[test_rows] = False
        keep[val_rows] = False
        test_items = dataset.item_idx[test_rows]
        val_items = dataset.item_idx[val_rows]
        train = Interactions(dataset.user_idx[keep], dataset.item_idx[keep], n_users, n_items)
        test = HeldOut(
            test_users,
            test_items,
            sample_candidates(test_users, test_items, known, n_negatives, seed, lookup=lookup),
        )
    val_candidates = sample_candidates(val_users, val_items, known, n_negatives, seed + 1, lookup=lookup)
    validation = HeldOut(val_users, val_items, val_candidates)
    logger.info(
        "leave-one-out split: %d train, %d validation, %d test users", len(train), len(validation), len(test)
    )
    return LeaveOneOutSplit(train=train, validation=validation, test=test, known=known)


def inner_leave_one_out(dataset: Dataset, seed: int = 0, n_negatives: int = N_NEGATIVES) -> LeaveOneOutSplit:
    """The leave-one-out split of `dataset` without each user's newest interaction (the test item).

    Its test item is the outer split's validation item (second-newest) and its validation item the
    third-newest, so a whole selection-and-refit pipeline can be compared on a pseudo-test without ever
    reading the real test item. Candidates are drawn (seeds as in `leave_one_out`) against every
    interaction of `dataset`, so the real test item is never a sampled negative, and `known` is that of
    `dataset`. Not for the NCF layout (its test item is fixed by the files).
    """
    if dataset.fixed_test is not None:
        raise ValueError("inner_leave_one_out needs a data set without a fixed test split")
    ends, counts = _last_positions(dataset.user_idx, dataset.n_users)
    keep = np.ones(dataset.n_interactions, dtype=bool)
    keep[ends[counts >= 2] - 1] = False
    inner = dataclasses.replace(
        dataset,
        **{name: getattr(dataset, name)[keep] for name in ("user_idx", "item_idx", "timestamp", "order")},
    )
    split = leave_one_out(inner, seed=seed, n_negatives=n_negatives)
    known = dataset.interactions().to_csr()
    lookup = PositiveLookup.from_csr(known)

    def resampled(held: HeldOut, candidate_seed: int) -> HeldOut:
        candidates = sample_candidates(
            held.user_idx, held.item_idx, known, n_negatives, candidate_seed, lookup=lookup
        )
        return HeldOut(held.user_idx, held.item_idx, candidates)

    return LeaveOneOutSplit(
        train=split.train,
        validation=resampled(split.validation, seed + 1),
        test=resampled(split.test, seed),
        known=known,
    )


def _fixed_test(dataset: Dataset) -> HeldOut:
    fixed = dataset.fixed_test
    user_idx = dataset.to_user_idx(fixed.user_id)
    item_idx = dataset.to_item_idx(fixed.movie_id)
    negatives = dataset.to_item_idx(fixed.negatives.ravel()).reshape(fixed.negatives.shape)
    candidates = np.column_stack([item_idx, negatives]).astype(np.int32)
    return HeldOut(user_idx.astype(np.int32), item_idx.astype(np.int32), candidates)
