"""`BodyCache`: a bounded memo of rendered recommendation bodies, owned by one `RunStore`.

A body is a pure function of (run, user, n), so it is rendered once and reused until the store is
replaced: the cache lives on the `RunStore` and is dropped with it when a reload swaps in a new run (no
stale body can outlive its run). Size is bounded in bytes; when full, the oldest bodies are evicted first.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable

ENTRY_OVERHEAD_BYTES = 200  # dict slot, key tuple and bytes header of one entry, roughly


class BodyCache:
    """Rendered bodies by key, at most `max_bytes` of them (counting `ENTRY_OVERHEAD_BYTES` per entry).

    `max_bytes=0` turns caching off (`get` always misses, `put` keeps nothing). Safe for the threads of a
    gthread worker: lookups are single dict reads, inserts and evictions hold a lock.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._bodies: OrderedDict[Hashable, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._bodies)

    def get(self, key: Hashable) -> bytes | None:
        return self._bodies.get(key)

    def put(self, key: Hashable, body: bytes) -> None:
        """Keep `body` under `key`, evicting the oldest bodies while over budget (a body larger than the
        whole budget is not kept)."""
        size = len(body) + ENTRY_OVERHEAD_BYTES
        if size > self.max_bytes:
            return
        with self._lock:
            if key in self._bodies:
                return
            while self.bytes + size > self.max_bytes:
                _, old = self._bodies.popitem(last=False)
                self.bytes -= len(old) + ENTRY_OVERHEAD_BYTES
            self._bodies[key] = body
            self.bytes += size
