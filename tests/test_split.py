"""Leave-one-out split: newest item = test, second newest = validation, deterministic tie-breaking."""

from __future__ import annotations

import numpy as np
import pytest

from model.data import DataLoader, inner_leave_one_out, leave_one_out
from model.data.interactions import Interactions


@pytest.fixture
def dat(fixtures_dir):
    return DataLoader(fixtures_dir / "dat").load()


def _rows_by_user(ds):
    """Reference: per user, (timestamp, line, item) sorted, computed the slow obvious way."""
    out = {}
    for u, i, t, o in zip(ds.user_idx, ds.item_idx, ds.timestamp, ds.order, strict=True):
        out.setdefault(int(u), []).append((int(t), int(o), int(i)))
    return {u: sorted(v) for u, v in out.items()}


def test_newest_is_test_second_newest_is_validation(dat):
    split = leave_one_out(dat, seed=0, n_negatives=2)
    reference = _rows_by_user(dat)
    for j, u in enumerate(split.test.user_idx):
        assert split.test.item_idx[j] == reference[int(u)][-1][2]
    for j, u in enumerate(split.validation.user_idx):
        assert split.validation.item_idx[j] == reference[int(u)][-2][2]
    assert len(split.train) + len(split.test) + len(split.validation) == dat.n_interactions


def test_tie_on_timestamp_broken_by_file_position(fixtures_dir, dat):
    # The fixture gives user 5's two newest ratings the same timestamp; the later line is the test item.
    u = int(dat.to_user_idx(np.array([5]))[0])
    lines = (fixtures_dir / "dat" / "ratings.dat").read_text().splitlines()
    user5 = [line.split("::") for line in lines if line.startswith("5::")]
    assert user5[-1][3] == user5[-2][3], "fixture lost its tie"
    split = leave_one_out(dat, seed=0, n_negatives=2)
    j = int(np.flatnonzero(split.test.user_idx == u)[0])
    assert dat.item_ids[split.test.item_idx[j]] == int(user5[-1][1])
    assert dat.item_ids[split.validation.item_idx[j]] == int(user5[-2][1])


def test_train_never_holds_held_out_items(dat):
    split = leave_one_out(dat, seed=0, n_negatives=2)
    train = set(zip(split.train.user_idx.tolist(), split.train.item_idx.tolist(), strict=True))
    for held in (split.test, split.validation):
        assert not train & set(zip(held.user_idx.tolist(), held.item_idx.tolist(), strict=True))


def test_candidates_are_true_negatives_distinct_and_seeded(dat):
    split = leave_one_out(dat, seed=0, n_negatives=2)
    known = split.known.toarray().astype(bool)
    for held in (split.test, split.validation):
        cand = held.candidates
        assert cand.shape == (len(held), 3) and cand.dtype == np.int32
        np.testing.assert_array_equal(cand[:, 0], held.item_idx)
        assert not known[held.user_idx[:, None], cand[:, 1:]].any()
        assert all(len(set(row)) == len(row) for row in cand.tolist())
    again = leave_one_out(dat, seed=0, n_negatives=2)
    np.testing.assert_array_equal(again.test.candidates, split.test.candidates)
    other = leave_one_out(dat, seed=1, n_negatives=2)
    assert not np.array_equal(other.test.candidates, split.test.candidates)


def test_users_with_few_interactions():
    # user 0: one rating (train only); user 1: two (test, no validation); user 2: three.
    from model.data.loader import Dataset

    users = np.array([0, 1, 1, 2, 2, 2], dtype=np.int32)
    items = np.array([0, 0, 1, 0, 1, 2], dtype=np.int32)
    ds = Dataset("toy", "dat", np.arange(3), np.arange(6), users, items, np.arange(6), np.arange(6), None, ())
    split = leave_one_out(ds, seed=0, n_negatives=2)
    assert split.test.user_idx.tolist() == [1, 2]
    assert split.validation.user_idx.tolist() == [2]
    assert sorted(zip(split.train.user_idx.tolist(), split.train.item_idx.tolist(), strict=True)) == [
        (0, 0),
        (1, 0),
        (2, 0),
    ]


def test_train_with_validation_adds_each_validation_item_and_no_test_item(dat):
    split = leave_one_out(dat, seed=0, n_negatives=2)
    merged = split.train_with_validation()
    pairs = sorted(zip(merged.user_idx.tolist(), merged.item_idx.tolist(), strict=True))
    train = list(zip(split.train.user_idx.tolist(), split.train.item_idx.tolist(), strict=True))
    val = list(zip(split.validation.user_idx.tolist(), split.validation.item_idx.tolist(), strict=True))
    assert pairs == sorted(train + val)
    assert (merged.n_users, merged.n_items) == (split.n_users, split.n_items)


def test_inner_split_is_one_step_back_and_never_holds_the_test_item(dat):
    outer = leave_one_out(dat, seed=0, n_negatives=2)
    inner = inner_leave_one_out(dat, seed=0, n_negatives=2)
    reference = _rows_by_user(dat)
    # the inner test item is the outer validation item; the inner validation item the third-newest
    np.testing.assert_array_equal(inner.test.user_idx, outer.validation.user_idx)
    np.testing.assert_array_equal(inner.test.item_idx, outer.validation.item_idx)
    assert len(inner.validation) > 0
    for j, u in enumerate(inner.validation.user_idx):
        assert inner.validation.item_idx[j] == reference[int(u)][-3][2]
    test_pairs = set(zip(outer.test.user_idx.tolist(), outer.test.item_idx.tolist(), strict=True))
    for part in (inner.train, inner.validation, inner.test):
        assert not test_pairs & set(zip(part.user_idx.tolist(), part.item_idx.tolist(), strict=True))
    assert len(inner.train) + len(inner.validation) + len(inner.test) + len(outer.test) == dat.n_interactions
    # negatives exclude every interaction, the real test item included
    known = outer.known.toarray().astype(bool)
    for held in (inner.test, inner.validation):
        np.testing.assert_array_equal(held.candidates[:, 0], held.item_idx)
        assert not known[held.user_idx[:, None], held.candidates[:, 1:]].any()
    assert (inner.known != outer.known).nnz == 0


def test_inner_split_refuses_a_fixed_test_split(fixtures_dir):
    with pytest.raises(ValueError, match="fixed test"):
        inner_leave_one_out(DataLoader(fixtures_dir / "ncf").load())


def test_ncf_split_uses_authors_test_items(fixtures_dir):
    ds = DataLoader(fixtures_dir / "ncf").load()
    split = leave_one_out(ds, seed=0, n_negatives=3)
    test_lines = [
        line.split("\t") for line in (fixtures_dir / "ncf" / "tiny.test.rating").read_text().splitlines()
    ]
    neg_lines = (fixtures_dir / "ncf" / "tiny.test.negative").read_text().splitlines()
    assert split.test.item_idx.tolist() == [int(t[1]) for t in test_lines]
    assert split.test.candidates[:, 1:].tolist() == [[int(x) for x in n.split("\t")[1:]] for n in neg_lines]
    # Validation = newest training rating of each user; train keeps the other 4 of 5.
    train_lines = [
        line.split("\t") for line in (fixtures_dir / "ncf" / "tiny.train.rating").read_text().splitlines()
    ]
    newest = {}
    for u, i, _, t in train_lines:
        if int(u) not in newest or int(t) >= newest[int(u)][0]:
            newest[int(u)] = (int(t), int(i))
    assert split.validation.item_idx.tolist() == [newest[u][1] for u in range(4)]
    assert len(split.train) == 4 * 4


def test_ml1m_split_sizes(ml1m_dir):
    split = leave_one_out(DataLoader(ml1m_dir).load(), seed=0)
    assert len(split.test) == len(split.validation) == 6040
    assert len(split.train) == 1_000_209 - 2 * 6040
    assert split.test.candidates.shape == (6040, 100)
    assert isinstance(split.train, Interactions)
