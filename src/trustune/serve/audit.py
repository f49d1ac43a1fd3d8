"""The audit trail: one entry per request, written to the store by a background thread in batches,
so recording a request adds no latency to it."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trustune.store import AuditEntry

__all__ = ["AuditWriter"]

log = logging.getLogger("trustune.serve")


class AuditWriter:
    """Queues entries and hands them to ``write`` (``Store.record``) every ``flush_ms``.

    A failing write is logged and counted (``failed``), never raised into a request; entries still
    queued at :meth:`close` are written before it returns.
    """

    def __init__(
        self, write: Callable[[list[AuditEntry]], None], *, flush_ms: float = 200.0,
        max_batch: int = 1000, on_written: Callable[[int], None] | None = None,
    ) -> None:  # fmt: skip
        self._write = write
        self._flush_s = flush_ms / 1000.0
        self._max_batch = max_batch
        self._on_written = on_written
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self.written = 0
        self.failed = 0

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="trustune-audit", daemon=True)
            self._thread.start()

    def add(self, entry: AuditEntry) -> None:
        self._queue.put(entry)

    def close(self, timeout: float | None = 10.0) -> None:
        if self._thread is None:
            return
        self._queue.put(None)
        self._thread.join(timeout)
        self._thread = None

    def _loop(self) -> None:
        closing = False
        while not closing:
            batch: list[AuditEntry] = []
            first = self._queue.get()
            if first is None:
                closing = True
            else:
                batch.append(first)
                deadline = time.monotonic() + self._flush_s
                while len(batch) < self._max_batch:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    try:
                        item = self._queue.get(timeout=remaining)
                    except queue.Empty:
                        break
                    if item is None:
                        closing = True
                        break
                    batch.append(item)
            if closing:  # everything still queued goes into this last write
                while True:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is not None:
                        batch.append(item)
            if batch:
                self._flush(batch)

    def _flush(self, batch: list[AuditEntry]) -> None:
        try:
            self._write(batch)
        except Exception as e:  # the audit store being down must not take the service down
            self.failed += len(batch)
            log.error("audit log: could not write %d entries: %s", len(batch), type(e).__name__)
            return
        self.written += len(batch)
        if self._on_written is not None:
            self._on_written(len(batch))
