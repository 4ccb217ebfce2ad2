"""Step timing for the batch job: each step is logged when it starts and ends, with its duration."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

logger = logging.getLogger(__name__)


class StepTimer:
    """Records `{step: seconds}` and logs each step; `progress` logs at most ~10 lines per step."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        logger.info("step %s: start", name)
        start = time.perf_counter()
        yield
        self.seconds[name] = round(time.perf_counter() - start, 3)
        logger.info("step %s: done in %.2fs", name, self.seconds[name])

    @staticmethod
    def progress(name: str, done: int, total: int, every: int) -> None:
        """Log `done/total` when a tenth of the work (`every` units) has passed, and at the end."""
        if done == total or done // every != (done - 1) // every:
            logger.info("step %s: %d/%d (%.0f%%)", name, done, total, 100.0 * done / max(total, 1))
