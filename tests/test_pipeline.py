"""`batch.pipeline.run_pipeline`, shared by `evaluate` and `run`: what is refit on what, and that a
selection-only run never touches the test items."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest

import batch.pipeline as pipeline
from batch.settings import EvaluateSettings, RunSettings
from model.baselines import ItemPop
from model.evaluation import Evaluator


class SpyItemPop(ItemPop):
    """ItemPop that records what it was fitted on and which pairs it scored."""

    log: ClassVar[list] = []

    def fit(self, train, validation=None):
        SpyItemPop.log.append(("fit", len(train), validation is not None))
        return super().fit(train, validation)

    def score(self, user_idx, item_idx):
        SpyItemPop.log.append(("score", np.asarray(user_idx).copy(), np.asarray(item_idx).copy()))
        return super().score(user_idx, item_idx)


@pytest.fixture
def spy(monkeypatch):
    SpyItemPop.log = []
    monkeypatch.setattr(pipeline, "build_model", lambda name, **options: SpyItemPop())
    evaluated = []
    original = Evaluator.evaluate

    def evaluate(self, model, which="validation", protocols=None):
        evaluated.append((which, type(model).__name__, model))
        return original(self, model, which, protocols)

    monkeypatch.setattr(Evaluator, "evaluate", evaluate)
    return evaluated


def settings(cls, data_dir, **values):
    return cls(data_dir=data_dir, model="itempop", protocol="sampled", eval_negatives=5, **values)


def test_selection_only_run_never_touches_the_test_items(spy, ml100k_dir):
    s = settings(EvaluateSettings, ml100k_dir, split="validation")
    result = pipeline.run_pipeline(s, publish=False, selection_only=True)
    assert [which for which, _, _ in spy] == ["validation"] and "test" not in result.results
    assert result.final is result.model and "refit" not in result.timer.seconds
    test = result.split.test
    test_pairs = set(zip(test.user_idx.tolist(), test.item_idx.tolist(), strict=True))
    for entry in SpyItemPop.log:
        if entry[0] == "score":
            assert not test_pairs & set(zip(entry[1].tolist(), entry[2].tolist(), strict=True))
    assert [e for e in SpyItemPop.log if e[0] == "fit"] == [("fit", len(result.split.train), True)]


def test_evaluate_refits_every_model_on_train_and_validation_before_the_test(spy, ml100k_dir):
    result = pipeline.run_pipeline(settings(EvaluateSettings, ml100k_dir), publish=False)
    split = result.split
    fits = [e for e in SpyItemPop.log if e[0] == "fit"]
    assert fits == [("fit", len(split.train), True), ("fit", len(split.train) + len(split.validation), False)]
    assert [(which, model) for which, _, model in spy] == [
        ("validation", result.model),
        ("test", result.final),
    ]
    assert result.final.popularity_.sum() == len(split.train) + len(split.validation)


def test_run_refits_on_every_interaction_and_reports_the_selection_models_test(spy, ml100k_dir):
    result = pipeline.run_pipeline(settings(RunSettings, ml100k_dir), publish=True)
    assert [(which, model) for which, _, model in spy] == [
        ("validation", result.model),
        ("test", result.model),
    ]
    assert result.final.popularity_.sum() == result.dataset.n_interactions == 100_000
    report = result.report(settings(RunSettings, ml100k_dir))
    assert report["refit"] is True and report["refit_training"]["class"].endswith("SpyItemPop")


def test_no_refit_keeps_the_selection_model(spy, ml100k_dir):
    result = pipeline.run_pipeline(settings(RunSettings, ml100k_dir, refit=False), publish=True)
    assert result.final is result.model and result.report(settings(RunSettings, ml100k_dir))["refit"] is False
