"""Quality gate: when a new run may replace the published one.

Two models are checked. The selection model (trained on train, selected on validation) has honest test
figures: its test HR@10 must clear the data set's floor, stay within `max_reference_drop` of a fixed
reference stored with the settings (so that many small drops cannot add up) and within `max_drop` of the
run `LATEST` names. The published model (the refit on every interaction, which has no held-out items
left) gets sanity checks: finite scores, HR@10 on the validation items it now trains on no lower than the
selection model's by more than `max_validation_drop`, and top-10 lists that overlap the selection model's
by at least `min_overlap`. The gate fails closed: unreadable metrics of the LATEST run refuse the new run
unless `allow_unreadable_previous` is set.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from batch.contract import METRICS, read_latest, run_dir
from batch.settings import GateSettings
from model.base import Recommender
from model.data.split import HeldOut, LeaveOneOutSplit
from model.evaluation import sampled_ranks
from model.metrics import hit_rate_at

logger = logging.getLogger(__name__)

METRIC = "hr@10"
K = 10


class QualityGateError(Exception):
    """The new model is not good enough to replace the published one."""


def previous_hr(output_dir: Path, protocol: str, allow_unreadable: bool) -> tuple[str, float] | None:
    """(run id, test HR@10 of `protocol`) of the LATEST run, None when nothing is published; raises
    `QualityGateError` when its metrics cannot be read, unless `allow_unreadable` (then None)."""
    run_id = read_latest(output_dir)
    if run_id is None:
        return None
    try:
        metrics = json.loads((run_dir(output_dir, run_id) / METRICS).read_text())
        return run_id, float(metrics["test"][protocol][METRIC])
    except (OSError, KeyError, TypeError, ValueError) as exc:
        message = f"the LATEST run {run_id} has no readable test {protocol} {METRIC} ({exc!r})"
        if not allow_unreadable:
            raise QualityGateError(
                f"{message}; set gate.allow_unreadable_previous to publish anyway"
            ) from None
        logger.warning("%s: gate.allow_unreadable_previous is set, so the drop check is skipped", message)
        return None


def published_model_checks(
    selection: Recommender,
    published: Recommender,
    split: LeaveOneOutSplit,
    rated: sp.csr_matrix,
    gate: GateSettings,
    seed: int = 0,
) -> dict[str, Any]:
    """Sanity of the published model against the selection model on a seeded sample of users.

    Args:
        rated: (n_users, n_items) CSR of every interaction, masked before the top-10 lists are compared.

    Returns:
        {"users", "finite", "validation_hr@10", "selection_validation_hr@10", "overlap@10"}.
    """
    if published is selection:
        return {"same_model": True}
    validation = split.validation
    rows = np.random.default_rng(seed).permutation(len(validation))[: gate.check_users]
    rows.sort()
    held = HeldOut(validation.user_idx[rows], validation.item_idx[rows], validation.candidates[rows])
    users = held.user_idx
    hr_published = hit_rate_at(sampled_ranks(published, held), K)
    hr_selection = hit_rate_at(sampled_ranks(selection, held), K)
    exclude = rated[users]
    new_items, _, available = published.recommend(users, K, exclude)
    old_items, _, _ = selection.recommend(users, K, exclude)
    listed = np.arange(new_items.shape[1])[None, :] < available[:, None]  # real recommendations only
    new, old = np.where(listed, new_items, -1), np.where(listed, old_items, -2)
    shared = (new[:, :, None] == old[:, None, :]).any(axis=2).sum(axis=1)
    overlap = float(np.mean(shared / np.maximum(available, 1)))
    return {
        "users": int(users.shape[0]),
        "finite": bool(np.isfinite(published.score_users(users[:64])).all()),
        "validation_hr@10": float(hr_published),
        "selection_validation_hr@10": float(hr_selection),
        "overlap@10": overlap,
    }


def check_quality(
    test_hr: float, dataset: str, output_dir: Path, gate: GateSettings, published: dict[str, Any]
) -> dict[str, Any]:
    """Raise `QualityGateError` with every failed check, or return the decision (JSON-able).

    Args:
        test_hr: the selection model's test HR@10 under `gate.protocol`.
        dataset: the data set's name (keys of `gate.floors` and `gate.references`).
        published: `published_model_checks` of the model about to be published.
    """
    previous = previous_hr(output_dir, gate.protocol, gate.allow_unreadable_previous)
    floor, reference = gate.floor(dataset), gate.references.get(dataset)
    decision = {
        "protocol": gate.protocol,
        "metric": f"test {METRIC}",
        "value": test_hr,
        "dataset": dataset,
        "floor": floor,
        "reference": reference,
        "max_reference_drop": gate.max_reference_drop,
        "max_drop": gate.max_drop,
        "previous_run": previous[0] if previous else None,
        "previous_value": previous[1] if previous else None,
        "published_model": published,
    }
    failures = []
    what = f"test {gate.protocol} {METRIC} {test_hr:.4f}"
    if not test_hr >= floor:
        failures.append(f"{what} is below the {dataset} floor {floor:.4f}")
    if reference is not None and not test_hr >= reference - gate.max_reference_drop:
        failures.append(
            f"{what} is more than {gate.max_reference_drop:.4f} below the {dataset} reference {reference:.4f}"
        )
    if previous is not None and not test_hr >= previous[1] - gate.max_drop:
        failures.append(
            f"{what} is more than {gate.max_drop:.4f} below the published run {previous[0]} "
            f"({previous[1]:.4f})"
        )
    if not published.get("same_model"):
        failures.extend(_published_failures(published, gate))
    if failures:
        raise QualityGateError("; ".join(failures))
    logger.info("quality gate passed: %s", decision)
    return decision


def check_drift(drift: dict[str, Any], gate: GateSettings) -> None:
    """Raise `QualityGateError` when `gate.min_drift_overlap` is set and the new lists' mean overlap@10 with
    the LATEST run's (`beyond_accuracy.drift`) is below it; nothing to compare (no previous run, no shared
    users) passes."""
    overlap = drift.get("mean_overlap")
    if gate.min_drift_overlap is None or overlap is None:
        return
    if not overlap >= gate.min_drift_overlap:
        raise QualityGateError(
            f"the new top-{drift['k']} lists share {overlap:.3f} of their movies with the published run "
            f"{drift['previous_run']} (minimum {gate.min_drift_overlap:.3f})"
        )


def _published_failures(checks: dict[str, Any], gate: GateSettings) -> list[str]:
    failures = []
    if not checks["finite"]:
        failures.append("the published model gives non-finite scores")
    drop = checks["selection_validation_hr@10"] - checks["validation_hr@10"]
    if not drop <= gate.max_validation_drop:
        failures.append(
            f"the published model's validation HR@10 {checks['validation_hr@10']:.4f} is more than "
            f"{gate.max_validation_drop:.4f} below the selection model's "
            f"{checks['selection_validation_hr@10']:.4f}"
        )
    if not checks["overlap@10"] >= gate.min_overlap:
        failures.append(
            f"the published model's top-10 lists share {checks['overlap@10']:.3f} of their movies with "
            f"the selection model's (minimum {gate.min_overlap:.3f})"
        )
    return failures
