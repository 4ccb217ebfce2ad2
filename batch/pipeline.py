"""The pipeline both `ncf-batch evaluate` and `ncf-batch run` go through: load -> leave-one-out split ->
fit (selecting on validation) -> evaluate -> refit, with one step timer and one report.

The two commands differ only in what is refit and which model the test figures describe:
- `evaluate` (`publish=False`): the selection model's validation figures; then, unless the run is
  selection-only (`split="validation"`, which never touches a test item), the refit on train + validation
  items and its test figures.
- `run` (`publish=True`): the selection model's validation and test figures (what the quality gate
  reads), then the refit on every interaction: the model the job publishes. Without a refit the
  published model is the selection model, and the job's scoring pass, which scores every user x movie
  pair anyway, yields the full-ranking test figures (`full_test_in_scoring`).

`full_validation` off skips the full-ranking validation figures (a pass over every pair).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from batch.settings import PipelineSettings
from batch.steps import StepTimer
from model.base import Recommender
from model.data import DataLoader, Dataset, leave_one_out
from model.data.split import LeaveOneOutSplit
from model.evaluation import Evaluator
from model.registry import build_model

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WarmStart:
    """A previous run's model to start training from: the model, its (user_ids, item_ids) by dense index
    (the id maps saved beside it) and the run's id."""

    model: Recommender
    ids: tuple[np.ndarray, np.ndarray]
    run_id: str


@dataclass
class PipelineResult:
    """What the pipeline produced.

    Attributes:
        model: the selection model (fitted on train, selected on validation).
        final: the refit model (`model` itself without refit): evaluated on test by `evaluate`, published by
            `run`.
        results: {"validation": ..., "test": ...} as `Evaluator.evaluate` returns them ("test" absent in a
            selection-only run; "test" "full" absent when `full_test_in_scoring`, until the job adds it).
        evaluator: what computed them (its `figures` turns the scoring pass' ranks into figures).
    """

    dataset: Dataset
    split: LeaveOneOutSplit
    model: Recommender
    final: Recommender
    results: dict[str, dict[str, dict[str, float]]]
    evaluator: Evaluator
    timer: StepTimer = field(default_factory=StepTimer)
    warm_start: dict[str, Any] | None = None  # from_run, applied, reason; None without --warm-start

    def report(self, settings: PipelineSettings) -> dict[str, Any]:
        """The run's figures, the model's report and the step timings (JSON-able)."""
        return {
            "model": settings.model,
            "dataset": self.dataset.name,
            "format": self.dataset.format,
            "n_users": self.dataset.n_users,
            "n_items": self.dataset.n_items,
            "n_interactions": self.dataset.n_interactions,
            "split_seed": settings.split_seed,
            **self.results,
            "refit": self.final is not self.model,
            "warm_start": self.warm_start,
            "training": self.model.report(),
            "refit_training": self.final.report() if self.final is not self.model else None,
            "data_gaps": data_gaps(self.dataset),
            "step_seconds": dict(self.timer.seconds),
            "step_peak_rss_mb": dict(self.timer.peak_rss_mb),
        }


def data_gaps(dataset: Dataset) -> dict[str, Any]:
    """Rated movies the data set's movie metadata lacks (published without title, year or genres): how
    many, and the first 100 raw ids."""
    missing = dataset.unlisted_movie_ids
    return {"unlisted_movies": int(missing.shape[0]), "unlisted_movie_ids": missing[:100].tolist()}


def scoring_pass_evaluates_test(settings: PipelineSettings, gate_protocol: str) -> bool:
    """Whether `run`'s scoring pass computes the full-ranking test figures: the protocol includes full
    ranking, the published model is the selection model (no refit) and the quality gate, which runs before
    scoring, does not read them."""
    return "full" in settings.protocols and not settings.refit and gate_protocol != "full"


def run_pipeline(
    settings: PipelineSettings,
    publish: bool,
    selection_only: bool = False,
    full_test_in_scoring: bool = False,
    evaluate: bool = True,
    warm_from: WarmStart | None = None,
    on_load: Callable[[Dataset], None] | None = None,
) -> PipelineResult:
    """Run the shared steps (see the module docstring); `selection_only` makes an `evaluate` run
    selection-only; `full_test_in_scoring` (`run` without refit) leaves the full-ranking test figures to
    the job's scoring pass; `evaluate` off trains (and refits) only, for a worker that is not the chief
    of a multi-worker training (`batch.cluster`); `warm_from` (`run --warm-start`) starts training from a
    previous model when the model takes it (`Recommender.warm_start`; its outcome is in the report);
    `on_load` is called with the dataset once it is loaded, before training."""
    timer = StepTimer()
    with timer.step("load"):
        dataset = DataLoader(settings.data_dir, format=settings.format, min_rating=settings.min_rating).load()
    if on_load is not None:
        on_load(dataset)
    with timer.step("split"):
        split = leave_one_out(dataset, seed=settings.split_seed, n_negatives=settings.eval_negatives)
    warm = None
    with timer.step("fit"):
        model = build_model(settings.model, **settings.model_options())
        if warm_from is not None:
            ids = (dataset.user_ids, dataset.item_ids)
            why_not = model.warm_start(warm_from.model, warm_from.ids, ids)
            warm = {"from_run": warm_from.run_id, "applied": why_not is None, "reason": why_not}
            logger.info("warm start from run %s: %s", warm_from.run_id, why_not or "applied")
        model.fit(split.train, split.validation)
    evaluator = Evaluator(split, k=10, protocols=settings.protocols, chunk_users=settings.chunk_users)
    results = {}
    protocols = evaluator.protocols
    if evaluate:
        with timer.step("evaluate_validation"):
            skip = () if settings.full_validation else ("full",)
            results["validation"] = evaluator.evaluate(model, "validation", _without(protocols, skip))
    final = model
    if publish:
        if evaluate:
            with timer.step("evaluate_test"):
                skip = ("full",) if full_test_in_scoring else ()
                results["test"] = evaluator.evaluate(model, "test", _without(protocols, skip))
        if settings.refit:
            with timer.step("refit"):
                final = model.refit(dataset.interactions())
    elif not selection_only:
        if settings.refit:
            with timer.step("refit"):
                final = model.refit(split.train_with_validation())
        with timer.step("evaluate_test"):
            results["test"] = evaluator.evaluate(final, "test")
    for which, by_protocol in results.items():
        for protocol, values in by_protocol.items():
            logger.info("%s %s: HR@10 %.4f NDCG@10 %.4f", which, protocol, values["hr@10"], values["ndcg@10"])
    return PipelineResult(dataset, split, model, final, results, evaluator, timer, warm)


def _without(protocols: tuple[str, ...], skip: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(p for p in protocols if p not in skip)
