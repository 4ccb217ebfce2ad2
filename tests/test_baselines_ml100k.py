"""Each baseline on real ML-100K (validation item, sampled protocol) lands well above ItemPop.

Needs NCF_DATA_DIR_100K (the ml100k_dir fixture). Floors are set well below the measured figures (run
`pytest tests/test_baselines_ml100k.py -s` to see them) and well above ItemPop's.
"""

import numpy as np
import pytest

from model.als import IALS
from model.baselines import ItemPop
from model.bpr import BPR
from model.data import DataLoader, leave_one_out
from model.eals import EALS
from model.ease import EASE
from model.evaluation import Evaluator
from model.knn import ItemKNN

pytestmark = pytest.mark.slow

# Lighter settings than the ML-1M defaults where training time matters (the test budget is ~1 minute).
MODELS = {
    "itemknn": lambda: ItemKNN(),
    "ease": lambda: EASE(),
    "ials": lambda: IALS(),
    "bpr": lambda: BPR(num_threads=0),
    "eals": lambda: EALS(iterations=8),
}


@pytest.fixture(scope="module")
def evaluation(ml100k_dir):
    split = leave_one_out(DataLoader(ml100k_dir).load(), seed=0)
    evaluator = Evaluator(split, protocols=("sampled", "full"))
    itempop = evaluator.evaluate(ItemPop().fit(split.train), "validation")
    return split, evaluator, itempop


@pytest.mark.parametrize("name", sorted(MODELS))
def test_beats_itempop_by_a_wide_margin(evaluation, name):
    split, evaluator, itempop = evaluation
    result = evaluator.evaluate(MODELS[name]().fit(split.train), "validation")
    print(name, result, "itempop", itempop)
    sampled, full = result["sampled"], result["full"]
    assert sampled["hr@10"] >= itempop["sampled"]["hr@10"] + 0.10
    assert sampled["ndcg@10"] >= itempop["sampled"]["ndcg@10"] + 0.06
    assert full["hr@10"] >= itempop["full"]["hr@10"] + 0.02
    assert np.isfinite(full["ndcg@10"])
