"""Which run is served: `RunHolder` loads the run `LATEST` names and swaps it in atomically; `Reloader`
polls `LATEST` on a daemon thread.

A request reads `holder.store` once and keeps that reference, so a swap never changes a response half-way.
A run that fails verification is refused: the previous store keeps serving, the log says why in detail and
`status` in general terms (it reaches unauthenticated `/readyz` clients, so it names no path or file).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from batch.contract import read_latest, run_dir
from lookup_service.store import LOAD_ERRORS, RunStore, load_run, valid_run_id

logger = logging.getLogger(__name__)

NOT_PUBLISHED = "no run published yet (LATEST missing)"
LATEST_UNREADABLE = "LATEST could not be read (details in the service log)"
INVALID_RUN_ID = "LATEST names an invalid run id"
FAILED_VERIFICATION = "the newest run failed verification (details in the service log)"


@dataclass(frozen=True)
class ReloadStatus:
    """The outcome of the last check of LATEST; `reason` is for clients: general, no paths or details."""

    latest_run_id: str | None = None
    refused_run_id: str | None = None
    reason: str | None = None


class RunHolder:
    """Holds the served `RunStore` (None before the first good run) and the last reload status.

    Each loaded store gets a fresh `BodyCache` of `body_cache_bytes` (0: none), dropped with it on reload.
    """

    def __init__(self, output_dir: Path, body_cache_bytes: int = 0) -> None:
        self.output_dir = Path(output_dir)
        self.body_cache_bytes = body_cache_bytes
        self.store: RunStore | None = None
        self.status = ReloadStatus(reason="not checked yet")
        self._lock = threading.Lock()

    def check(self) -> None:
        """Read LATEST; load and swap in the run it names when that is new. Never raises for a bad run."""
        with self._lock:
            try:
                latest = read_latest(self.output_dir)
            except OSError as exc:
                self._refuse(None, LATEST_UNREADABLE, f"cannot read LATEST: {exc}")
                return
            if latest is None:
                self.status = ReloadStatus(reason=NOT_PUBLISHED)
                return
            current = self.store.run_id if self.store else None
            if latest == current or latest == self.status.refused_run_id:
                self.status = ReloadStatus(latest, self.status.refused_run_id, self.status.reason)
                return
            if not valid_run_id(latest):
                self._refuse(latest, INVALID_RUN_ID, f"LATEST names an invalid run id {latest!r}")
                return
            try:
                store = load_run(run_dir(self.output_dir, latest), self.body_cache_bytes)
            except LOAD_ERRORS as exc:
                self._refuse(latest, FAILED_VERIFICATION, f"{type(exc).__name__}: {exc}")
                return
            self.store = store
            self.status = ReloadStatus(latest_run_id=latest)
            logger.info("now serving run %s (was %s)", latest, current)

    def _refuse(self, run_id: str | None, reason: str, detail: str) -> None:
        """Keep serving what is served; `reason` goes to the status (clients), `detail` to the log only."""
        self.status = ReloadStatus(latest_run_id=run_id, refused_run_id=run_id, reason=reason)
        serving = self.store.run_id if self.store else None
        logger.error("refused run %s, still serving %s: %s", run_id, serving, detail)


class Reloader:
    """Calls `holder.check()` every `interval` seconds on a daemon thread until `stop()`."""

    def __init__(self, holder: RunHolder, interval: float) -> None:
        self.holder = holder
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start polling in this process (call once per process: after a fork, in the child)."""
        self._thread = threading.Thread(target=self._run, name="ncf-run-reloader", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.holder.check()
            except Exception:  # keep polling whatever happens; the error is logged with its traceback
                logger.exception("reload check failed")
