"""Memory shared with forked helper processes, and the helper process that runs part of a training step.

The NumPy engine keeps its parameters, optimizer state and per-step work buffers in anonymous shared
memory (`shared_zeros`), so a process forked from it (`StepHelper`) reads and writes the very same arrays.
A helper serves requests "call this method of the engine with these (small, picklable) arguments" over a
pipe, one after the other, and answers each with its result; the engine uses it to run one half of each
parallel phase of a step while it runs the other half itself. Unlike threads, the two halves never wait
for each other's Python interpreter (no GIL), and a pipe round trip costs tens of microseconds; both
sides poll the pipe briefly before blocking on it (`receive`).
"""

from __future__ import annotations

import logging
import mmap
import multiprocessing
import time
import traceback
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)
# Seconds a process polls its pipe before blocking on it. A process blocked on a pipe took ~40-100 us to
# wake up on our 2-core VM (the engine waited that long for the helper's half at every phase); polling
# costs the CPU of an otherwise idle core. On a loaded machine it would steal the other process' time
# slice, but there the engine's probe keeps one process and the helper gets no requests.
SPIN_SECONDS = 1e-3


def receive(connection: Connection, spin: float | None = None) -> Any:
    """The next object on `connection`: polled for up to `spin` seconds (default `SPIN_SECONDS`), then
    waited for."""
    deadline = time.monotonic() + (SPIN_SECONDS if spin is None else spin)
    while not connection.poll(0):
        if time.monotonic() > deadline:
            break
    return connection.recv()


def shared_zeros(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """A zero array of `shape` and `dtype` in anonymous shared memory (visible to processes forked later)."""
    count = int(np.prod(shape, dtype=np.int64))
    buffer = mmap.mmap(-1, max(count * np.dtype(dtype).itemsize, 1))  # MAP_SHARED | MAP_ANONYMOUS
    return np.frombuffer(buffer, dtype=dtype, count=count).reshape(shape)


def can_fork() -> bool:
    """Whether helper processes can be forked here (POSIX)."""
    return "fork" in multiprocessing.get_all_start_methods()


def _serve(target: object, connection: Connection) -> None:
    """The helper's loop: call `getattr(target, name)(*args)` per request until `None` arrives."""
    while (request := receive(connection)) is not None:
        name, args = request
        try:
            connection.send((True, getattr(target, name)(*args)))
        except Exception:  # reported to the engine, which raises it
            connection.send((False, traceback.format_exc()))


class StepHelper:
    """A process forked from the engine that calls the engine's methods on request (see the module
    docstring). Only arrays allocated with `shared_zeros` before the fork are shared; everything else is
    the helper's own copy as of the fork."""

    def __init__(self, target: object) -> None:
        context = multiprocessing.get_context("fork")
        self._connection, child = context.Pipe()
        self._process = context.Process(target=_serve, args=(target, child), daemon=True)
        self._process.start()
        child.close()

    def submit(self, name: str, args: tuple) -> None:
        """Ask the helper to run `target.name(*args)`; collect the result with `result`, in order."""
        self._connection.send((name, args))

    def result(self) -> Any:
        """The result of the oldest request not yet collected; raises RuntimeError if it failed."""
        ok, value = receive(self._connection)
        if not ok:
            raise RuntimeError(f"step helper process failed:\n{value}")
        return value

    def close(self) -> None:
        """Stop the helper and wait for it (killed if it does not stop within 10 s)."""
        try:
            self._connection.send(None)
        except OSError:  # already gone
            pass
        self._process.join(10)
        if self._process.is_alive():
            logger.warning("step helper %d did not stop; killing it", self._process.pid)
            self._process.kill()
            self._process.join()
        self._connection.close()
