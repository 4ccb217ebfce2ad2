"""Multi-worker `ncf-batch run`: only the chief evaluates, scores and publishes; another task trains (fit
and refit) and returns without writing anything."""

from __future__ import annotations

import json

import pytest

from batch.cluster import ClusterTask, cluster_task
from batch.contract import read_latest
from batch.job import run_job
from batch.settings import RunSettings
from model.baselines import ItemPop
from model.evaluation import Evaluator

FAST = {"model": "itempop", "eval_negatives": 3, "gate": {"floors": {}, "default_floor": 0.0}}


def tf_config(index: int, chief: bool = False) -> str:
    cluster = {"worker": ["127.0.0.1:1", "127.0.0.1:2"], **({"chief": ["127.0.0.1:3"]} if chief else {})}
    return json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})


@pytest.mark.parametrize(
    ("config", "chief"),
    [(None, True), (tf_config(0), True), (tf_config(1), False), (tf_config(0, chief=True), False)],
)
def test_the_chief_is_worker_0_unless_the_cluster_names_one(monkeypatch, config, chief):
    if config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", config)
    assert cluster_task().is_chief is chief
    assert ClusterTask("chief", 0, 3, has_chief=True).is_chief


@pytest.fixture
def calls(monkeypatch):
    """What the job did: evaluations and fits (refits included) of the model."""
    seen = {"evaluate": 0, "fit": 0}
    evaluate, fit = Evaluator.evaluate, ItemPop.fit

    def counted_evaluate(self, *args, **kwargs):
        seen["evaluate"] += 1
        return evaluate(self, *args, **kwargs)

    def counted_fit(self, *args, **kwargs):
        seen["fit"] += 1
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(Evaluator, "evaluate", counted_evaluate)
    monkeypatch.setattr(ItemPop, "fit", counted_fit)
    return seen


def test_a_task_other_than_the_chief_trains_and_publishes_nothing(ml100k_dir, tmp_path, monkeypatch, calls):
    monkeypatch.setenv("TF_CONFIG", tf_config(1))
    output = tmp_path / "out"
    assert run_job(RunSettings(data_dir=ml100k_dir, output_dir=output, **FAST)) is None
    assert calls == {"evaluate": 0, "fit": 2}  # the fit and the refit, no evaluation
    assert not output.exists()


def test_the_chief_evaluates_and_publishes(ml100k_dir, tmp_path, monkeypatch, calls):
    monkeypatch.setenv("TF_CONFIG", tf_config(0))
    output = tmp_path / "out"
    manifest = run_job(RunSettings(data_dir=ml100k_dir, output_dir=output, **FAST))
    assert manifest is not None and read_latest(output) == manifest.run_id
    assert calls["evaluate"] >= 2 and calls["fit"] == 2


def test_warm_start_is_refused_in_a_multi_worker_training(ml100k_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("TF_CONFIG", tf_config(0))
    with pytest.raises(ValueError, match="warm_start is not supported in a multi-worker training"):
        RunSettings(data_dir=ml100k_dir, output_dir=tmp_path, warm_start=True, **FAST)
    monkeypatch.delenv("TF_CONFIG")
    assert RunSettings(data_dir=ml100k_dir, output_dir=tmp_path, warm_start=True, **FAST).warm_start
