"""Memory shared with forked helper processes, and the helper process that runs part of a training step.

The NumPy engine keeps its parameters, optimizer state and per-step work buffers in anonymous shared
memory (`shared_zeros`), so a process forked from it (`StepHelper`) reads and writes the very same arrays.
A helper serves requests "call this method of the engine with these (small, picklable) arguments", one
after the other, and answers each with its result; the engine uses it to run one half of each parallel
phase of a step while it runs the other half itself. Unlike threads, the two halves never wait for each
other's Python interpreter (no GIL).

Requests and answers travel through a `Mailbox`: a message pickled into a shared buffer and a POSIX
semaphore raised when it is there. The waiting side polls the semaphore (`sem_trywait`, an atomic
operation: no system call) for up to `SPIN_SECONDS` (adapted, see `Mailbox.wait`) before blocking on
it, so a message that arrives within that time is seen within a microsecond or so; the pipe used before
cost two system calls per message and a poll system call per check (a round trip of ~20-30 us). A
request is offered rather than handed over, and the engine takes it back when the helper has not
started it by the time the engine's own half is done (`StepHelper`).
"""

from __future__ import annotations

import logging
import mmap
import multiprocessing
import pickle
import struct
import time
import traceback
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)
# Longest time a process polls for a message before blocking. A blocked process took ~40-100 us to wake up
# on our 2-core VM (the engine waited that long for the helper's half at every phase); polling costs the
# CPU of an otherwise idle core. On a loaded machine it would take time from the other process, so the
# polling time shrinks where messages come late (`Mailbox.wait`).
SPIN_SECONDS = 1e-3
MIN_SPIN_SECONDS = 2e-5  # where an adapted polling time restarts from (see `Mailbox.wait`)
# Seconds a blocked wait sleeps before checking that the other process is still alive.
LIVENESS_SECONDS = 0.2
_LENGTH = struct.Struct("<q")  # a message's pickled size, before it in the buffer


def shared_zeros(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """A zero array of `shape` and `dtype` in anonymous shared memory (visible to processes forked later)."""
    count = int(np.prod(shape, dtype=np.int64))
    buffer = mmap.mmap(-1, max(count * np.dtype(dtype).itemsize, 1))  # MAP_SHARED | MAP_ANONYMOUS
    return np.frombuffer(buffer, dtype=dtype, count=count).reshape(shape)


def can_fork() -> bool:
    """Whether helper processes can be forked here (POSIX)."""
    return "fork" in multiprocessing.get_all_start_methods()


class Mailbox:
    """One-way, one-message-at-a-time channel between two processes forked from a common parent: a shared
    buffer holding the pickled message and a semaphore counting the messages posted and not yet taken.
    The sender must not post again before the receiver took the previous message (the engine's
    request / answer protocol guarantees it)."""

    def __init__(self, context: Any, size: int = 1 << 20) -> None:
        self._buffer = mmap.mmap(-1, size)  # pages are only touched as far as messages reach
        self._ready = context.Semaphore(0)
        self._spin = SPIN_SECONDS  # the receiver's current polling time (`wait`)

    def write(self, message: Any) -> None:
        """Put `message` (picklable, at most the buffer's size when pickled) in the buffer, unsignalled."""
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        if _LENGTH.size + len(data) > len(self._buffer):
            raise ValueError(
                f"message of {len(data)} bytes does not fit the {len(self._buffer)}-byte mailbox"
            )
        _LENGTH.pack_into(self._buffer, 0, len(data))
        self._buffer[_LENGTH.size : _LENGTH.size + len(data)] = data

    def read(self) -> Any:
        """The message in the buffer (without waiting for a signal)."""
        (length,) = _LENGTH.unpack_from(self._buffer, 0)
        return pickle.loads(self._buffer[_LENGTH.size : _LENGTH.size + length])

    def signal(self) -> None:
        """Tell the receiver that a message was written (a full memory barrier: it sees the bytes)."""
        self._ready.release()

    def post(self, message: Any) -> None:
        """`write` `message` and `signal` it."""
        self.write(message)
        self.signal()

    def wait(self, alive: Any = None) -> None:
        """Wait for the next signal: polled for a while, then blocked on. `alive()`, when given, is
        checked while blocked: EOFError when it turns false (the sender died).

        The polling time adapts (in the receiving process): a wait that ended within `SPIN_SECONDS`
        doubles it (up to `SPIN_SECONDS`, from at least `MIN_SPIN_SECONDS`), a longer one halves it. On
        an idle machine the engine's messages come within tens of microseconds, and polling spares the
        wake-up of a blocked process (~40-100 us here); where the processes share their cores with other
        work, messages come late, and polling would only take CPU time from the sender."""
        start = time.monotonic()
        deadline = start + self._spin
        ready = self._ready
        while not ready.acquire(False):
            if time.monotonic() > deadline:
                while not ready.acquire(True, LIVENESS_SECONDS):
                    if alive is not None and not alive():
                        raise EOFError("the other process is gone")
                break
        if time.monotonic() - start <= SPIN_SECONDS:
            self._spin = min(SPIN_SECONDS, max(2 * self._spin, MIN_SPIN_SECONDS))
        else:
            self._spin /= 2

    def take(self, alive: Any = None) -> Any:
        """The next message (see `wait`)."""
        self.wait(alive)
        return self.read()


def _serve(target: object, requests: Mailbox, claim: Any, answers: Mailbox) -> None:
    """The helper's loop: at each signal, claim the offered request, if it is still there, and answer it
    with `getattr(target, name)(*args)`; stop at a `None` request (or when the engine is gone)."""
    parent = multiprocessing.parent_process()
    alive = parent.is_alive if parent is not None else None
    while True:
        try:
            requests.wait(alive)
        except EOFError:  # the engine is gone: nobody to serve
            return
        if not claim.acquire(False):  # taken back by the engine before this process got to it
            continue
        request = requests.read()
        if request is None:
            return
        name, args = request
        try:
            answers.post((True, getattr(target, name)(*args)))
        except Exception:  # reported to the engine, which raises it
            answers.post((False, traceback.format_exc()[-10_000:]))


class StepHelper:
    """A process forked from the engine that calls the engine's methods on request (see the module
    docstring). Only arrays allocated with `shared_zeros` before the fork are shared; everything else is
    the helper's own copy as of the fork.

    A request is offered, not handed over: the helper claims it when it gets to it, and until then the
    engine may take it back (`take_back`) and run it itself. On a loaded machine, where the helper may
    wait several milliseconds for a core, the engine then does not wait for it. Claim and take-back both
    try to decrement one semaphore that the offer raised to 1 (`sem_trywait`, atomic), so exactly one
    process runs each request."""

    def __init__(self, target: object) -> None:
        context = multiprocessing.get_context("fork")
        self._requests, self._answers = Mailbox(context), Mailbox(context)
        self._claim = context.Semaphore(0)
        self._busy = False  # a request was offered and neither taken back nor answered yet
        self._process = context.Process(
            target=_serve, args=(target, self._requests, self._claim, self._answers), daemon=True
        )
        self._process.start()

    def _offer(self, request: tuple[str, tuple] | None) -> None:
        self._requests.write(request)  # read only by a process that claims it, after the release below
        self._claim.release()
        self._requests.signal()

    def submit(self, name: str, args: tuple) -> None:
        """Offer the helper to run `target.name(*args)`; then `take_back` it or collect its `result`
        (one request at a time)."""
        if self._busy:
            raise RuntimeError("the step helper has a request outstanding")
        self._offer((name, args))
        self._busy = True

    def take_back(self) -> bool:
        """Withdraw the outstanding request if the helper has not claimed it yet: True if withdrawn (the
        caller runs it), False if the helper has it (collect its `result`)."""
        if self._busy and self._claim.acquire(False):
            self._busy = False
            return True
        return False

    def result(self) -> Any:
        """The result of the outstanding request; raises RuntimeError if it failed or the helper died."""
        try:
            ok, value = self._answers.take(self._process.is_alive)
        except EOFError as error:
            raise RuntimeError(f"step helper process {self._process.pid} died") from error
        self._busy = False
        if not ok:
            raise RuntimeError(f"step helper process failed:\n{value}")
        return value

    def close(self) -> None:
        """Stop the helper and wait for it (killed if it does not stop within 10 s)."""
        if self._process.is_alive():
            if self._busy and not self.take_back():  # the helper runs a request: let it finish
                try:
                    self.result()
                except RuntimeError:
                    pass
            self._offer(None)
        self._process.join(10)
        if self._process.is_alive():
            logger.warning("step helper %d did not stop; killing it", self._process.pid)
            self._process.kill()
            self._process.join()
