"""Step timing for the batch job: each step is logged when it starts and ends, with its duration and the
process's peak resident memory so far (the peak reached by the end of that step)."""

from __future__ import annotations

import logging
import resource
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

logger = logging.getLogger(__name__)


class StepTimer:
    """Records `{step: seconds}` and `{step: peak RSS in MB so far}` and logs each step; `progress` logs at
    most ~10 lines per step."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.peak_rss_mb: dict[str, float] = {}

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        logger.info("step %s: start", name)
        start = time.perf_counter()
        yield
        self.seconds[name] = round(time.perf_counter() - start, 3)
        self.peak_rss_mb[name] = peak_rss_mb()
        logger.info(
            "step %s: done in %.2fs (peak RSS %.0f MB)", name, self.seconds[name], self.peak_rss_mb[name]
        )

    @staticmethod
    def progress(name: str, done: int, total: int, every: int) -> None:
        """Log `done/total` when a tenth of the work (`every` units) has passed, and at the end."""
        if done == total or done // every != (done - 1) // every:
            logger.info("step %s: %d/%d (%.0f%%)", name, done, total, 100.0 * done / max(total, 1))


def peak_rss_mb() -> float:
    """The process's peak resident set size so far, in MB (10^6 bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return round(peak * (1 if sys.platform == "darwin" else 1024) / 1e6, 1)
