"""Training negative sampler: true negatives only, vectorized, reproducible by seed."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.stats import chisquare

from model.data import Interactions, NegativeSampler, sample_candidates
from model.data.positives import PositiveLookup
from model.data.sampling import popularity_weights, recency_rank, recent_mask, weighted_csr

# NegativeSampler(_toy(n_users=3, n_items=12, per_user=4), num_negatives=2, seed=7).epoch(0) negatives
NEGATIVES_SEED7 = [11, 8, 8, 10, 11, 9, 10, 2, 11, 3, 3, 10, 10, 5, 5, 9, 1, 9, 1, 5, 9, 3, 4, 3]


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


def test_grouped_epoch_holds_the_same_examples_a_positive_then_its_negatives():
    train = _toy()
    sampler = NegativeSampler(train, num_negatives=4, seed=3, recent_fraction=0.2, recent_weight=3)
    flat, grouped = sampler.epoch(2), sampler.epoch(2, grouped=True)
    users, items, labels = (a.reshape(-1, 5) for a in grouped)
    n_pos = users.shape[0]
    assert n_pos > len(train)  # the recent positives' copies are groups too
    assert all(a.dtype == b.dtype for a, b in zip(flat, grouped, strict=True))
    np.testing.assert_array_equal(labels, np.tile([1, 0, 0, 0, 0], (n_pos, 1)))
    assert (users == users[:, :1]).all()  # a group is one user's
    np.testing.assert_array_equal(users[:, 0], flat[0][:n_pos])
    np.testing.assert_array_equal(items[:, 0], flat[1][:n_pos])
    np.testing.assert_array_equal(items[:, 1:].ravel(), flat[1][n_pos:])  # the same draws


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


def test_negatives_are_unchanged_by_the_lookup():
    """The rejection loop consumes the random stream as it always did: pinned draws for a fixed seed."""
    train = _toy(n_users=3, n_items=12, per_user=4)
    _, items, _ = NegativeSampler(train, num_negatives=2, seed=7).epoch(0)
    assert not PositiveLookup(train).contains(np.repeat(train.user_idx, 2), items[len(train) :]).any()
    np.testing.assert_array_equal(items[len(train) :], NEGATIVES_SEED7)


def test_popularity_aware_negatives_follow_the_item_counts():
    """negative_popularity b: a negative is item i with probability proportional to (count_i + 1) ** b among
    the user's non-positives (chi-square against those expected frequencies); 0 keeps the uniform draws."""
    # User 0 rated items 0 and 1; users 1-6 give items 2, 3, 4, 5 training counts 0, 1, 3, 6.
    users = [0, 0, 1, 1, 2, 3, 4, 1, 2, 3, 4, 5, 6]
    items = [0, 1, 1, 3, 4, 4, 4, 5, 5, 5, 5, 5, 5]
    train = Interactions(np.array(users, np.int32), np.array(items, np.int32), 7, 6)
    counts = train.item_counts()
    np.testing.assert_array_equal(counts, [1, 2, 0, 1, 3, 6])
    np.testing.assert_allclose(popularity_weights(train, 0.5), np.cumsum(np.sqrt(counts + 1.0)))
    assert popularity_weights(train, 0.0) is None
    sampler = NegativeSampler(train, num_negatives=20000, seed=1, negative_popularity=1.0)
    all_users, all_items, _ = sampler.epoch(0)
    negatives = all_items[len(train) :][all_users[len(train) :] == 0][:20000]
    observed = np.bincount(negatives, minlength=6)
    assert observed[0] == observed[1] == 0  # the user's own positives
    allowed = np.array([2, 3, 4, 5])
    expected = (counts[allowed] + 1.0) / (counts[allowed] + 1.0).sum() * observed.sum()
    assert chisquare(observed[allowed], expected).pvalue > 0.001
    assert observed[5] > 4 * observed[2]  # weights 7 and 1: the popular item far more often
    uniform = NegativeSampler(train, num_negatives=2, seed=7, negative_popularity=0.0).epoch(0)[1]
    np.testing.assert_array_equal(uniform, NegativeSampler(train, num_negatives=2, seed=7).epoch(0)[1])
    with pytest.raises(ValueError):
        popularity_weights(train, -1.0)


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


def _random_pairs(n_users, n_items, n, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, n_users, n).astype(np.int32), rng.integers(0, n_items, n).astype(np.int32)


def test_lookup_is_exact_at_movielens_25m_key_range():
    # keys u * n_items + i go past 2^32 here, and the filter is far smaller than the cell space
    n_users, n_items = 162_541, 59_047
    users, items = _random_pairs(n_users, n_items, 50_000, seed=0)
    users, items = np.concatenate([users, users[:100]]), np.concatenate([items, items[:100]])  # duplicates
    lookup = PositiveLookup(Interactions(users, items, n_users, n_items))
    pairs = set(zip(users.tolist(), items.tolist(), strict=True))
    assert len(lookup) == len(pairs)
    q_users, q_items = _random_pairs(n_users, n_items, 50_000, seed=1)
    q_users, q_items = np.concatenate([q_users, users]), np.concatenate([q_items, items])
    expected = [pair in pairs for pair in zip(q_users.tolist(), q_items.tolist(), strict=True)]
    np.testing.assert_array_equal(lookup.contains(q_users, q_items), expected)
    assert lookup.contains(q_users, q_items)[-users.size :].all()


@pytest.mark.parametrize("dense", [True, False])
def test_lookup_answers_every_cell_exactly(dense):
    # dense: users x items <= 32 x pairs, a bitmap of the cells; else the hashed filter plus binary search
    train = _toy() if dense else _toy(n_users=2000, n_items=1000, per_user=2)
    from_pairs, from_csr = PositiveLookup(train), PositiveLookup.from_csr(train.to_csr())
    assert from_pairs._exact == from_csr._exact == dense
    users, items = np.divmod(np.arange(train.n_users * train.n_items), train.n_items)
    cells = train.to_csr().toarray().astype(bool).ravel()
    np.testing.assert_array_equal(from_pairs.contains(users, items), cells)
    np.testing.assert_array_equal(from_csr.contains(users, items), cells)


def test_lookup_of_nothing_contains_nothing():
    empty = Interactions(np.zeros(0, np.int32), np.zeros(0, np.int32), 3, 4)
    assert not PositiveLookup(empty).contains(np.array([0, 2]), np.array([3, 1])).any()


def _known(rows, n_items):
    """CSR of the given item lists, one row per user."""
    users = np.repeat(np.arange(len(rows)), [len(r) for r in rows])
    items = np.concatenate([np.asarray(r, dtype=np.int64) for r in rows])
    return Interactions(users.astype(np.int32), items.astype(np.int32), len(rows), n_items).to_csr()


def test_candidates_are_distinct_unknown_items_and_seeded():
    rng = np.random.default_rng(0)
    n_items = 300
    # light users, a heavy one with exactly 99 unknown items left, and one with 100
    rows = [rng.choice(n_items, size, replace=False) for size in (20, 1, 150, 201, 200, 60)]
    known = _known(rows, n_items)
    users = np.array([0, 1, 2, 3, 4, 5, 3, 0], dtype=np.int32)
    held = np.array([rows[u][0] for u in users], dtype=np.int32)
    cand = sample_candidates(users, held, known, 99, seed=3, chunk_users=3)
    assert cand.shape == (8, 100) and cand.dtype == np.int32
    np.testing.assert_array_equal(cand[:, 0], held)
    for u, row in zip(users, cand[:, 1:], strict=True):
        assert len(set(row.tolist())) == 99
        assert not set(row.tolist()) & set(rows[u].tolist())
        assert row.min() >= 0 and row.max() < n_items
    # the user with 99 unknown items gets exactly those
    assert set(cand[3, 1:].tolist()) == set(range(n_items)) - set(rows[3].tolist())
    np.testing.assert_array_equal(cand, sample_candidates(users, held, known, 99, seed=3, chunk_users=3))
    assert not np.array_equal(cand, sample_candidates(users, held, known, 99, seed=4, chunk_users=3))
    with_lookup = sample_candidates(
        users, held, known, 99, seed=3, chunk_users=3, lookup=PositiveLookup.from_csr(known)
    )
    np.testing.assert_array_equal(with_lookup, cand)


def test_candidates_are_uniform_over_unknown_items():
    n_items = 30
    known = _known([np.arange(0, 30, 3)], n_items)  # 10 known, 20 unknown items
    users = np.zeros(4000, dtype=np.int32)
    cand = sample_candidates(users, np.zeros(4000, np.int32), known, 5, seed=0, chunk_users=1000)[:, 1:]
    counts = np.bincount(cand.ravel(), minlength=n_items)
    assert not counts[::3].any()
    assert chisquare(np.delete(counts, np.arange(0, 30, 3))).pvalue > 1e-3


def test_candidate_pairs_are_uniform_subsets():
    # 2 of the 4 unknown items: each of the 6 pairs equally likely (sampling without replacement)
    known = _known([[0, 5]], 6)
    cand = sample_candidates(np.zeros(6000, np.int32), np.zeros(6000, np.int32), known, 2, seed=1)[:, 1:]
    pair = np.sort(cand, axis=1)
    codes = np.unique(pair[:, 0] * 6 + pair[:, 1], return_counts=True)
    assert sorted(codes[0].tolist()) == [1 * 6 + 2, 1 * 6 + 3, 1 * 6 + 4, 2 * 6 + 3, 2 * 6 + 4, 3 * 6 + 4]
    assert chisquare(codes[1]).pvalue > 1e-3
    # and the order within a row is random too
    assert 0.45 < np.mean(cand[:, 0] < cand[:, 1]) < 0.55


def test_too_few_unknown_items_is_an_error():
    known = _known([np.arange(8)], 10)
    with pytest.raises(ValueError, match="fewer than 3 items"):
        sample_candidates(np.array([0]), np.array([0]), known, 3, seed=0)
    assert sample_candidates(np.array([0]), np.array([0]), sp.csr_matrix(known), 2, seed=0).shape == (1, 3)
