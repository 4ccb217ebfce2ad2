"""Training negative sampler: true negatives only, vectorized, reproducible by seed."""

from __future__ import annotations

import numpy as np
import pytest

from model.data import Interactions, NegativeSampler
from model.data.sampling import _DENSE_LIMIT, PositiveLookup, recency_rank, recent_mask, weighted_csr


def _toy(n_users=50, n_items=40, per_user=15, seed=0):
    rng = np.random.default_rng(seed)
    users = np.repeat(np.arange(n_users), per_user)
    items = np.concatenate([rng.choice(n_items, per_user, replace=False) for _ in range(n_users)])
    return Interactions(users.astype(np.int32), items.astype(np.int32), n_users, n_items)


def test_epoch_layout_and_no_positive_leaks():
    train = _toy()
    users, items, labels = NegativeSampler(train, num_negatives=4, seed=3).epoch(0)
    n = len(train)
    assert users.shape == items.shape == labels.shape == (5 * n,)
    assert users.dtype == items.dtype == np.int32 and labels.dtype == np.float32
    assert labels[:n].sum() == n and labels[n:].sum() == 0
    positives = set(zip(train.user_idx.tolist(), train.item_idx.tolist(), strict=True))
    negatives = set(zip(users[n:].tolist(), items[n:].tolist(), strict=True))
    assert not positives & negatives
    # each positive gets 4 negatives of the same user
    np.testing.assert_array_equal(users[n:], np.repeat(train.user_idx, 4))


def test_reproducible_per_epoch_and_fresh_across_epochs():
    train = _toy()
    a = NegativeSampler(train, 4, seed=3)
    b = NegativeSampler(train, 4, seed=3)
    np.testing.assert_array_equal(a.epoch(2)[1], b.epoch(2)[1])
    assert not np.array_equal(a.epoch(0)[1], a.epoch(1)[1])
    assert not np.array_equal(a.epoch(0)[1], NegativeSampler(train, 4, seed=4).epoch(0)[1])


def test_negatives_cover_all_non_positives_roughly_uniformly():
    train = _toy(n_users=1, n_items=10, per_user=5)
    _, items, _ = NegativeSampler(train, num_negatives=20000, seed=0).epoch(0)
    negatives = items[5:]
    allowed = sorted(set(range(10)) - set(train.item_idx.tolist()))
    counts = np.bincount(negatives, minlength=10)
    assert sorted(np.flatnonzero(counts)) == allowed
    assert counts[allowed].min() > 0.9 * counts[allowed].mean()


def test_sparse_lookup_agrees_with_dense(monkeypatch):
    train = _toy()
    dense = PositiveLookup(train)
    monkeypatch.setattr("model.data.sampling._DENSE_LIMIT", 0)
    sparse = PositiveLookup(train)
    assert dense._dense is not None and sparse._keys is not None
    rng = np.random.default_rng(0)
    u, i = rng.integers(0, 50, 5000), rng.integers(0, 40, 5000)
    np.testing.assert_array_equal(dense.contains(u, i), sparse.contains(u, i))
    assert _DENSE_LIMIT > 6040 * 3706


def test_user_with_every_item_is_an_error():
    train = Interactions(np.zeros(3, np.int32), np.arange(3, dtype=np.int32), 1, 3)
    with pytest.raises(ValueError, match="interacted with every item"):
        NegativeSampler(train, 4)


def _interleaved():
    """Users 0 and 1, rows interleaved, oldest first per user: user 0 has items 0-3, user 1 items 4, 5."""
    users = np.array([0, 1, 0, 0, 1, 0], np.int32)
    items = np.array([0, 4, 1, 2, 5, 3], np.int32)
    return Interactions(users, items, 2, 8)


def test_recency_rank_counts_from_each_users_newest_row():
    np.testing.assert_array_equal(recency_rank(_interleaved()), [3, 1, 2, 1, 0, 0])


def test_recent_mask_takes_a_ceiled_share_per_user():
    train = _interleaved()
    np.testing.assert_array_equal(recent_mask(train, 0.0), [False] * 6)
    # ceil(0.25 * 4) = 1 row of user 0, ceil(0.25 * 2) = 1 row of user 1
    np.testing.assert_array_equal(recent_mask(train, 0.25), [False, False, False, False, True, True])
    # ceil(0.5 * 4) = 2, ceil(0.5 * 2) = 1
    np.testing.assert_array_equal(recent_mask(train, 0.5), [False, False, False, True, True, True])
    with pytest.raises(ValueError, match="fraction"):
        recent_mask(train, 1.5)


def test_recent_positives_count_recent_weight_times_with_their_own_negatives():
    train = _interleaved()
    users, items, labels = NegativeSampler(train, 2, seed=0, recent_fraction=0.5, recent_weight=3).epoch(1)
    n_pos = 6 + 2 * 3  # three recent rows (items 2, 3 of user 0; item 5 of user 1) twice more
    assert users.shape == (3 * n_pos,) and labels.sum() == n_pos
    assert labels[:n_pos].all() and not labels[n_pos:].any()
    counts = np.bincount(items[:n_pos], minlength=8)
    np.testing.assert_array_equal(counts, [1, 1, 3, 3, 1, 3, 0, 0])
    np.testing.assert_array_equal(np.bincount(users[n_pos:]), [2 * (1 + 1 + 3 + 3), 2 * (1 + 3)])


def test_recency_weighting_off_is_the_plain_sampler():
    train = _toy()
    plain = NegativeSampler(train, 4, seed=3).epoch(2)
    for fraction, weight in ((0.0, 5), (0.3, 1)):
        weighted = NegativeSampler(train, 4, seed=3, recent_fraction=fraction, recent_weight=weight).epoch(2)
        for a, b in zip(plain, weighted, strict=True):
            np.testing.assert_array_equal(a, b)


def test_weighted_csr_puts_recent_weight_on_each_users_newest_share():
    matrix = weighted_csr(_interleaved(), 0.5, 3.0)
    assert matrix.dtype == np.float32 and matrix.shape == (2, 8) and matrix.has_sorted_indices
    # recent rows (ceil(0.5 * n_u)): items 2, 3 of user 0 and item 5 of user 1
    expected = [[1, 1, 3, 3, 0, 0, 0, 0], [0, 0, 0, 0, 1, 3, 0, 0]]
    np.testing.assert_array_equal(matrix.toarray(), expected)
    np.testing.assert_array_equal(
        weighted_csr(_interleaved(), 0.25, 0.5).toarray()[0], [1, 1, 1, 0.5, 0, 0, 0, 0]
    )


def test_weighted_csr_off_is_exactly_to_csr():
    train = _interleaved()
    plain = train.to_csr()
    for fraction, weight in ((0.0, 3.0), (0.5, 1.0)):
        matrix = weighted_csr(train, fraction, weight)
        for attr in ("data", "indices", "indptr"):
            np.testing.assert_array_equal(getattr(matrix, attr), getattr(plain, attr))


def test_weighted_csr_a_repeated_pair_is_recent_once_not_summed():
    # user 0 rated item 0, then item 1, then item 0 again (newest): one pair, value recent_weight
    train = Interactions(np.zeros(3, np.int32), np.array([0, 1, 0], np.int32), 1, 2)
    np.testing.assert_array_equal(weighted_csr(train, 0.2, 4.0).toarray(), [[4, 1]])


def test_weighted_csr_rejects_bad_settings():
    with pytest.raises(ValueError, match="recent_weight"):
        weighted_csr(_interleaved(), 0.5, 0.0)
    with pytest.raises(ValueError, match="fraction"):
        weighted_csr(_interleaved(), -0.1, 2.0)
