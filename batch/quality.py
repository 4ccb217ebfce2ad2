"""Quality gate: a run is published only if its test HR@10 clears a floor and does not drop too far below
the run currently published (`LATEST`)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from batch.contract import METRICS, read_latest, run_dir

logger = logging.getLogger(__name__)

METRIC = "hr@10"


class QualityGateError(Exception):
    """The new model is not good enough to replace the published one."""


def previous_hr(output_dir: Path, protocol: str) -> tuple[str, float] | None:
    """(run id, test HR@10 of `protocol`) of the LATEST run, or None when there is none or it lacks it."""
    run_id = read_latest(output_dir)
    if run_id is None:
        return None
    try:
        metrics = json.loads((run_dir(output_dir, run_id) / METRICS).read_text())
        return run_id, float(metrics["test"][protocol][METRIC])
    except (OSError, KeyError, TypeError, ValueError) as exc:
        logger.warning(
            "LATEST run %s has no readable test %s %s (%s): gate uses the floor only",
            run_id,
            protocol,
            METRIC,
            exc,
        )
        return None


def check_quality(hr: float, output_dir: Path, protocol: str, floor: float, max_drop: float) -> dict:
    """Raise `QualityGateError` unless `hr` >= floor and >= previous - max_drop; else return the decision."""
    previous = previous_hr(output_dir, protocol)
    decision = {
        "protocol": protocol,
        "metric": f"test {METRIC}",
        "value": hr,
        "floor": floor,
        "max_drop": max_drop,
        "previous_run": previous[0] if previous else None,
        "previous_value": previous[1] if previous else None,
    }
    if hr < floor:
        raise QualityGateError(f"test {protocol} {METRIC} {hr:.4f} is below the floor {floor:.4f}")
    if previous is not None and hr < previous[1] - max_drop:
        raise QualityGateError(
            f"test {protocol} {METRIC} {hr:.4f} is more than {max_drop:.4f} below the published run "
            f"{previous[0]} ({previous[1]:.4f})"
        )
    logger.info("quality gate passed: %s", decision)
    return decision
