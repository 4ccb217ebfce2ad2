"""Training negative sampler: true negatives only, vectorized, reproducible by seed."""

from __future__ import annotations

import numpy as np
import pytest

from model.data import Interactions, NegativeSampler
from model.data.sampling import _DENSE_LIMIT, PositiveLookup


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
