"""Which task of a multi-worker training this process is, from `$TF_CONFIG` (read without TensorFlow).

With `$TF_CONFIG` naming a cluster of more than one task, every task runs `ncf-batch run` alike and trains
together (`model.ncf.keras_engine.cluster_strategy`); only the chief evaluates, gates, scores and
publishes. The chief is the "chief" task when the cluster has one, else worker 0 (TensorFlow's rule).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass


@dataclass(frozen=True)
class ClusterTask:
    """This process' task: its type and index, how many tasks the cluster has (1: no cluster) and whether
    it has a "chief" task."""

    type: str
    index: int
    tasks: int
    has_chief: bool = False

    @property
    def is_chief(self) -> bool:
        if self.tasks <= 1 or self.type == "chief":
            return True
        return self.type == "worker" and self.index == 0 and not self.has_chief


def cluster_task() -> ClusterTask:
    """This process' task from `$TF_CONFIG`; ("worker", 0, 1) without it."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return ClusterTask("worker", 0, 1)
    config = json.loads(raw)
    cluster, task = config.get("cluster", {}), config.get("task", {})
    return ClusterTask(
        type=str(task.get("type", "worker")),
        index=int(task.get("index", 0)),
        tasks=sum(len(hosts) for hosts in cluster.values()),
        has_chief="chief" in cluster,
    )
