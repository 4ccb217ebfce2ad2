"""The quality gate (`batch.quality`): floors per data set, a fixed reference, the drop from LATEST, fail
closed on unreadable metrics, and sanity checks of the model that is actually published (the refit)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from batch.contract import LATEST, METRICS, RUNS_DIR
from batch.quality import QualityGateError, check_quality, published_model_checks
from batch.settings import GateSettings
from model.baselines import ItemPop, RandomModel
from model.data.interactions import Interactions
from model.data.split import HeldOut, LeaveOneOutSplit

SAME = {"same_model": True}


def publish_metrics(output, run_id: str, text: str) -> None:
    (output / RUNS_DIR / run_id).mkdir(parents=True)
    (output / RUNS_DIR / run_id / METRICS).write_text(text)
    (output / LATEST).write_text(run_id + "\n")


def test_floor_is_per_data_set_with_a_default(tmp_path):
    gate = GateSettings(floors={"ml-1m": 0.7}, default_floor=0.4, references={})
    with pytest.raises(QualityGateError, match=r"below the ml-1m floor 0\.7000"):
        check_quality(0.69, "ml-1m", tmp_path, gate, SAME)
    assert check_quality(0.69, "other", tmp_path, gate, SAME)["floor"] == 0.4
    with pytest.raises(QualityGateError, match="below the other floor"):
        check_quality(0.39, "other", tmp_path, gate, SAME)


def test_fixed_reference_stops_small_drops_adding_up(tmp_path):
    gate = GateSettings(floors={}, default_floor=0.0, references={"ml-1m": 0.74}, max_reference_drop=0.03)
    publish_metrics(tmp_path, "r1", json.dumps({"test": {"sampled": {"hr@10": 0.72}}}))
    # 0.705 is within max_drop of the last run (0.72) but more than 0.03 below the fixed reference
    with pytest.raises(QualityGateError, match=r"below the ml-1m reference 0\.7400"):
        check_quality(0.705, "ml-1m", tmp_path, gate, SAME)
    assert check_quality(0.715, "ml-1m", tmp_path, gate, SAME)["previous_value"] == 0.72


def test_drop_from_latest(tmp_path):
    gate = GateSettings(floors={}, default_floor=0.0, references={}, max_drop=0.02)
    publish_metrics(tmp_path, "r1", json.dumps({"test": {"sampled": {"hr@10": 0.8}}}))
    with pytest.raises(QualityGateError, match="below the published run r1"):
        check_quality(0.77, "d", tmp_path, gate, SAME)


@pytest.mark.parametrize(
    "text", ["{not json", json.dumps({"test": {}}), json.dumps({"test": {"sampled": 3}})]
)
def test_unreadable_latest_metrics_fail_closed(tmp_path, text):
    gate = GateSettings(floors={}, default_floor=0.0, references={})
    publish_metrics(tmp_path, "r1", text)
    with pytest.raises(QualityGateError, match="allow_unreadable_previous"):
        check_quality(0.9, "d", tmp_path, gate, SAME)
    allowed = gate.model_copy(update={"allow_unreadable_previous": True})
    assert check_quality(0.9, "d", tmp_path, allowed, SAME)["previous_run"] is None


def test_nan_is_never_good_enough(tmp_path):
    gate = GateSettings(floors={}, default_floor=0.0, references={})
    with pytest.raises(QualityGateError):
        check_quality(float("nan"), "d", tmp_path, gate, SAME)


def tiny_split(n_users: int = 30, n_items: int = 40, seed: int = 0) -> LeaveOneOutSplit:
    """Users with 4 training items from a popularity-skewed pool, one validation and one test item."""
    rng = np.random.default_rng(seed)
    p = np.linspace(2.0, 0.2, n_items)
    rows = [rng.choice(n_items, size=6, replace=False, p=p / p.sum()) for _ in range(n_users)]
    items = np.array(rows, dtype=np.int32)
    users = np.repeat(np.arange(n_users, dtype=np.int32), 4)
    train = Interactions(users, items[:, :4].ravel(), n_users, n_items)

    def held(col: int) -> HeldOut:
        negatives = np.array(
            [[i for i in range(n_items) if i not in row][:5] for row in rows], dtype=np.int32
        )
        candidates = np.concatenate([items[:, col : col + 1], negatives], axis=1)
        return HeldOut(np.arange(n_users, dtype=np.int32), items[:, col].copy(), candidates)

    everything = Interactions(
        np.repeat(np.arange(n_users, dtype=np.int32), 6), items.ravel(), n_users, n_items
    )
    return LeaveOneOutSplit(train, held(4), held(5), everything.to_csr())


class NaNScores(ItemPop):
    def score_users(self, user_idx):
        return np.full((len(user_idx), self.n_items), np.nan, dtype=np.float32)


def test_published_model_checks_catch_a_broken_or_unrelated_refit(tmp_path):
    split = tiny_split()
    selection = ItemPop().fit(split.train)
    good = selection.refit(split.train_with_validation())
    gate = GateSettings(check_users=20)
    checks = published_model_checks(selection, good, split, split.known, gate)
    assert checks["users"] == 20 and checks["finite"] and checks["overlap@10"] > 0.5
    assert check_quality(0.9, "d", tmp_path, gate, checks)["published_model"] == checks
    broken = NaNScores().fit(split.train)
    assert not published_model_checks(selection, broken, split, split.known, gate)["finite"]
    unrelated = RandomModel(seed=5).fit(split.train)
    checks = published_model_checks(selection, unrelated, split, split.known, gate)
    strict = gate.model_copy(update={"min_overlap": 0.99, "max_validation_drop": 0.0})
    with pytest.raises(QualityGateError, match="top-10 lists share"):
        check_quality(0.9, "d", tmp_path, strict, checks)
    assert published_model_checks(selection, selection, split, split.known, gate) == SAME
