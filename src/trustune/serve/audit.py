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

_FIRST_PAUSE_S = 0.05
_MAX_PAUSE_S = 2.0


class AuditWriter:
    """Queues entries and hands them to ``write`` (``Store.record``) every ``flush_ms``.

    A failing write (the database is locked by another writer, or down) is tried again with
    exponential backoff for ``retry_s``; entries that still cannot be written are dropped, counted
    (``dropped``, ``on_dropped``) and logged with their number, never raised into a request.
    Entries still queued at :meth:`close` are written (with the same retries) before it returns.
    """

    def __init__(
        self, write: Callable[[list[AuditEntry]], None], *, flush_ms: float = 200.0,
        max_batch: int = 1000, retry_s: float = 30.0,
        on_written: Callable[[int], None] | None = None,
        on_retry: Callable[[], None] | None = None,
        on_dropped: Callable[[int], None] | None = None,
    ) -> None:  # fmt: skip
        self._write = write
        self._flush_s = flush_ms / 1000.0
        self._max_batch = max_batch
        self._retry_s = retry_s
        self._on_written = on_written
        self._on_retry = on_retry
        self._on_dropped = on_dropped
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.added = 0
        self.written = 0
        self.retries = 0
        self.dropped = 0

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="trustune-audit", daemon=True)
            self._thread.start()

    def add(self, entry: AuditEntry) -> None:
        with self._lock:
            self.added += 1
        self._queue.put(entry)

    def close(self, timeout: float | None = None) -> None:
        """Write what is queued, then end the thread; ``timeout`` None: the retry budget + 10 s.

        Entries the thread has not written by then are counted as dropped and logged.
        """
        if self._thread is None:
            return
        self._queue.put(None)
        self._thread.join(self._retry_s + 10.0 if timeout is None else timeout)
        if self._thread.is_alive():
            with self._lock:
                lost = self.added - self.written - self.dropped
            if lost > 0:
                self._drop(lost, reason="the server stopped first")
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
        """Write ``batch``, retrying with backoff for up to ``retry_s``; else drop it."""
        give_up_at = time.monotonic() + self._retry_s
        pause = _FIRST_PAUSE_S
        while True:
            try:
                self._write(batch)
                break
            except Exception as e:  # the audit store being down must not take the service down
                if time.monotonic() + pause > give_up_at:
                    self._drop(len(batch), reason=type(e).__name__)
                    return
                with self._lock:
                    self.retries += 1
                if self._on_retry is not None:
                    self._on_retry()
                time.sleep(pause)
                pause = min(pause * 2, _MAX_PAUSE_S)
        with self._lock:
            self.written += len(batch)
        if self._on_written is not None:
            self._on_written(len(batch))

    def _drop(self, count: int, *, reason: str) -> None:
        with self._lock:
            self.dropped += count
        if self._on_dropped is not None:
            self._on_dropped(count)
        # the number only: entries may hold key ids and (with log_texts) texts
        log.error(
            "audit log: %d entries dropped, not written within %.1f s of retries (%s)",
            count, self._retry_s, reason,
        )  # fmt: skip
