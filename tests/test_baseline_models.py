"""Every baseline learns a block-structured toy data set, scores pairs and rows consistently, and is
registered by name."""

import numpy as np
import pytest

from model.als import IALS
from model.base import Recommender
from model.bpr import BPR
from model.data.interactions import Interactions
from model.eals import EALS
from model.ease import EASE
from model.knn import ItemKNN
from model.registry import MODELS, build_model

N_USERS, N_ITEMS, BLOCK = 40, 20, 10


def _blocks(seed: int = 0) -> tuple[Interactions, np.ndarray]:
    """Users 0-19 like items 0-9 (block A), users 20-39 items 10-19 (block B); each user saw 6 of 10."""
    rng = np.random.default_rng(seed)
    users, items = [], []
    for u in range(N_USERS):
        block = 0 if u < N_USERS // 2 else BLOCK
        seen = rng.choice(BLOCK, size=6, replace=False) + block
        users += [u] * 6
        items += list(seen)
    train = Interactions(np.array(users, np.int32), np.array(items, np.int32), N_USERS, N_ITEMS)
    return train, train.to_csr().toarray() > 0


MODELS_UNDER_TEST = {
    "bpr": lambda: BPR(factors=2, learning_rate=0.05, iterations=200, num_threads=1),
    "ials": lambda: IALS(factors=2, regularization=0.1, iterations=15, num_threads=1, recent_fraction=0.0),
    "eals": lambda: EALS(factors=2, c0=8.0, regularization=0.1, iterations=15, init_std=0.1),
    "ease": lambda: EASE(l2=1.0, recent_fraction=0.0),
    "itemknn": lambda: ItemKNN(k=10, shrink=0.0),
}


@pytest.mark.parametrize("name", sorted(MODELS_UNDER_TEST))
def test_users_rank_their_own_block_first(name):
    train, seen = _blocks()
    model = MODELS_UNDER_TEST[name]().fit(train)
    scores = model.score_users(np.arange(N_USERS))
    assert scores.shape == (N_USERS, N_ITEMS) and scores.dtype == np.float32
    own = np.zeros((N_USERS, N_ITEMS), dtype=bool)
    own[: N_USERS // 2, :BLOCK] = True
    own[N_USERS // 2 :, BLOCK:] = True
    # Each user has 4 unseen items in their own block: they should fill the top 4 of the unseen items.
    ranking = np.argsort(-np.where(seen, -np.inf, scores), axis=1, kind="stable")[:, :4]
    in_own_block = np.take_along_axis(own, ranking, axis=1)
    assert np.all(in_own_block[:, 0]), "some user's best unseen item is in the other block"
    assert in_own_block.mean() >= 0.9


@pytest.mark.parametrize("name", sorted(MODELS_UNDER_TEST))
def test_pair_scores_equal_row_scores(name):
    train, _ = _blocks(1)
    model = MODELS_UNDER_TEST[name]().fit(train)
    rng = np.random.default_rng(0)
    users = rng.integers(0, N_USERS, 300).astype(np.int32)
    items = rng.integers(0, N_ITEMS, 300).astype(np.int32)
    pairs = model.score(users, items)
    assert pairs.shape == (300,) and pairs.dtype == np.float32
    np.testing.assert_allclose(pairs, model.score_users(users)[np.arange(300), items], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["itemknn", "bpr", "ials", "eals", "ease"])
def test_registered_by_name(name):
    assert name in MODELS
    assert isinstance(build_model(name), Recommender)
