"""`StepRunner`: runs the parallel phases of the NumPy engine's training steps, in one process or several.

Speed only: nothing here changes a result, and the engine reads the same without it. A phase of a step
(`NumpyNCF.train_step`: the forward and backward passes of the batch's parts, then the user and item row
updates) is a list of independent tasks, each a call of an engine method with small picklable arguments,
`(name, args)`, that writes only its own outputs into arrays in shared memory
(`model.ncf.numpy_worker.shared_zeros`); the engine adds the tasks' results in a fixed order. So the
results do not depend on which process ran a task, or when.

`run` runs a phase: one task after the other in this process, or, inside `helpers` (one epoch), the first
task here and each next one offered to a helper process forked from the engine
(`model.ncf.numpy_worker.StepHelper`, one task each); a task its helper has not started by the time this
process is done with its own is taken back and run here, so a helper that waits for a core on a loaded
machine does not hold the step up. Processes, unlike threads, do not contend for the GIL: a step makes a
few hundred NumPy calls of a few microseconds each, and with threads their Python overhead serialised
much of the step.

`step` runs a whole training step and chooses, at the start of each epoch, whether to use the helpers:
the first 2 `probe_steps` steps alternate between this process alone and with the helpers, and the rest of
the epoch uses whichever had the lower median wall time (on a loaded machine the second core may be busy,
and the helpers then only add overhead).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from model.ncf.numpy_worker import StepHelper, can_fork

logger = logging.getLogger(__name__)
Task = tuple[str, tuple]  # (name of a method of the target, its arguments)


class StepRunner:
    """Runs tasks (methods of `target`) for the engine; see the module docstring."""

    def __init__(self, target: object) -> None:
        self._target = target
        self._helpers: list[StepHelper] = []  # forked for the current epoch (`helpers`)
        self._pool: list[StepHelper] | None = None  # the helpers the current step uses (None: none)
        self._processes, self._probe_steps, self._steps = 1, 0, 0
        # Wall seconds of the probe steps: index 0 without the helpers, 1 with them.
        self._probes: tuple[list[float], list[float]] = ([], [])

    @property
    def forked(self) -> bool:
        """Whether helper processes run (they share only the memory allocated before they were forked)."""
        return bool(self._helpers)

    @contextmanager
    def helpers(self, processes: int, probe_steps: int) -> Iterator[None]:
        """Fork `processes - 1` helpers for the steps run inside (none where processes cannot be forked)
        and stop them at the end; `probe_steps` steps are timed with and without them (each) before
        choosing (see `step`; 0: every step uses them)."""
        helpers = self._start_helpers(processes - 1) if processes > 1 and can_fork() else []
        self._helpers, self._pool = helpers, helpers or None
        self._processes, self._probe_steps, self._steps, self._probes = processes, probe_steps, 0, ([], [])
        try:
            yield
        finally:
            self._helpers, self._pool = [], None
            for helper in helpers:
                helper.close()

    def _start_helpers(self, count: int) -> list[StepHelper]:
        """`count` helper processes, or none (logged) where processes cannot be started here (e.g.
        inside a daemonic multiprocessing worker)."""
        helpers: list[StepHelper] = []
        try:
            for _ in range(count):
                helpers.append(StepHelper(self._target))
        except (AssertionError, OSError) as error:  # multiprocessing asserts on daemonic parents
            logger.warning("no step helper processes (%s): training in one process", error)
            for helper in helpers:
                helper.close()
            return []
        return helpers

    def step(self, train_step: Callable[..., float], *batch: Any) -> float:
        """`train_step(*batch)`, with or without the helpers (the probe, then the faster)."""
        pool, steps = self._helpers or None, self._steps
        self._steps += 1
        probing = pool is not None and steps < 2 * self._probe_steps
        if probing:  # alternate, so that both see the same load
            self._pool = pool if steps % 2 else None
        elif pool is not None and self._probe_steps and steps == 2 * self._probe_steps:
            single, helped = (float(np.median(times)) * 1e3 for times in self._probes)
            self._pool = pool if helped < single else None
            logger.info(
                "step processes: %d (median step %.2f ms alone, %.2f ms with %d)",
                self._processes if self._pool else 1,
                single,
                helped,
                self._processes,
            )
        began = time.perf_counter()
        loss = train_step(*batch)
        if probing:
            self._probes[steps % 2].append(time.perf_counter() - began)
        return loss

    def run(self, tasks: list[Task], first: Task | None = None) -> list[Any]:
        """Results of `tasks` in order: the first runs here, the next ones are offered to the step's
        helpers, one each, when there are, and the rest runs here, one after the other; a task that its
        helper has not started by then runs here too. `first`, when given, runs here before them, while
        the helpers already work."""
        target = self._target
        offered = dict(zip(range(1, len(tasks)), self._pool or (), strict=False))  # task -> helper
        for k, helper in offered.items():
            helper.submit(*tasks[k])
        if first:
            getattr(target, first[0])(*first[1])
        results = [
            None if k in offered else getattr(target, name)(*args) for k, (name, args) in enumerate(tasks)
        ]
        for k, helper in offered.items():  # a task its helper has not started yet runs here
            results[k] = getattr(target, tasks[k][0])(*tasks[k][1]) if helper.take_back() else helper.result()
        return results
