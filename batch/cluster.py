"""Which task of a multi-worker training this process is, from `$TF_CONFIG` (read without TensorFlow).

With `$TF_CONFIG` naming a cluster of more than one task, every task runs `ncf-batch run` alike and trains
together (`model.ncf.keras_engine.cluster_strategy`); only the chief evaluates, gates, scores and
publishes. The chief is the "chief" task when the cluster has one, else worker 0 (TensorFlow's rule).
`local_worker_envs` gives the environments of a cluster of worker processes on this machine (tests,
benchmarks).
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Mapping
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


def local_worker_envs(n_workers: int, base: Mapping[str, str] | None = None) -> list[dict[str, str]]:
    """The environments of `n_workers` worker processes of one training on this machine, in task order:
    `base` (default `os.environ`) without `TF_CONFIG`, plus, for more than one worker, a `TF_CONFIG` naming
    the cluster of all of them on localhost ports free at the call and the process' task index."""
    env = {k: v for k, v in (os.environ if base is None else base).items() if k != "TF_CONFIG"}
    if n_workers <= 1:
        return [dict(env) for _ in range(n_workers)]
    hosts = [f"127.0.0.1:{_free_port()}" for _ in range(n_workers)]
    return [
        {
            **env,
            "TF_CONFIG": json.dumps({"cluster": {"worker": hosts}, "task": {"type": "worker", "index": i}}),
        }
        for i in range(n_workers)
    ]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
