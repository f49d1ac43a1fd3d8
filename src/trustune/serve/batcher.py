"""Dynamic micro-batching: concurrent predict requests coalesced into one forward pass.

One model thread owns the model. Requests queue up; the thread takes every request waiting (up to
``max_batch`` texts), and while more predict requests are known to be on their way (counted by the
server as they arrive) it waits for them, at most ``max_wait_ms``. The batch runs through the
library's own inference path (``TextClassifier.predict_proba``), which sorts texts by length so
texts of similar length share a padded forward pass. A lone client never waits.
Other work on the model (explanations) runs on the same thread, one job at a time.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

__all__ = ["BatchStats", "MicroBatcher"]

PredictFn = Callable[[list[str]], Sequence[Any]]  # one result per text, in order


@dataclass
class _Predict:
    texts: list[str]
    future: Future[Sequence[Any]] = field(default_factory=Future)


@dataclass
class _Job:
    fn: Callable[[], Any]
    future: Future[Any] = field(default_factory=Future)


_STOP = object()


@dataclass
class BatchStats:
    """Counters the metrics endpoint reads."""

    batches: int = 0
    texts: int = 0
    requests: int = 0


class MicroBatcher:
    """Coalesces :meth:`submit` calls from many threads or tasks into batched model calls."""

    def __init__(
        self, predict: PredictFn, *, max_batch: int = 32, max_wait_ms: float = 5.0,
        pending: Callable[[], int] | None = None,
        on_batch: Callable[[int, int, float], None] | None = None,
    ) -> None:  # fmt: skip
        """``pending()`` is how many predict requests the server has in flight (None: unknown,
        always wait up to ``max_wait_ms``); ``on_batch(requests, texts, seconds)`` sees each batch.
        """
        self._predict = predict
        self.max_batch = max_batch
        self.max_wait_s = max_wait_ms / 1000.0
        self._pending = pending
        self._on_batch = on_batch
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._held: list[Any] = []  # jobs that arrived while a batch was being gathered
        self.stats = BatchStats()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self.running:
            return
        self._thread = threading.Thread(target=self._loop, name="trustune-model", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Finish everything already submitted, then end the model thread."""
        if self._thread is None:
            return
        self._queue.put(_STOP)
        self._thread.join(timeout)
        self._thread = None

    def submit(self, texts: list[str]) -> Future[Sequence[Any]]:
        """The results of ``texts`` (one per text), computed in some batch."""
        item = _Predict(list(texts))
        if not item.texts:
            item.future.set_result([])
            return item.future
        self._check_running()
        self._queue.put(item)
        return item.future

    def run(self, fn: Callable[[], Any]) -> Future[Any]:
        """Run ``fn()`` alone on the model thread (for work that changes the model's mode)."""
        self._check_running()
        job = _Job(fn)
        self._queue.put(job)
        return job.future

    def _check_running(self) -> None:
        if not self.running:
            raise RuntimeError("the micro-batcher is not running (call start())")

    # ---- the model thread ----
    def _loop(self) -> None:
        stopping = False
        while True:
            item = self._held.pop(0) if self._held else None
            if item is None:
                if stopping:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        return
                else:
                    item = self._queue.get()
            if item is _STOP:
                stopping = True  # drain what is queued, then end
                continue
            if isinstance(item, _Job):
                _run_job(item)
                continue
            batch, saw_stop = self._gather(item, waiting=not stopping)
            stopping = stopping or saw_stop
            self._run_batch(batch)

    def _gather(self, first: _Predict, *, waiting: bool) -> tuple[list[_Predict], bool]:
        batch, size, saw_stop = [first], len(first.texts), False
        deadline = time.monotonic() + self.max_wait_s
        while size < self.max_batch:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                remaining = deadline - time.monotonic()
                if not waiting or saw_stop or remaining <= 0 or not self._more_coming(len(batch)):
                    break
                try:
                    item = self._queue.get(timeout=min(remaining, 0.0005))
                except queue.Empty:
                    continue
            if item is _STOP:
                saw_stop = True
            elif isinstance(item, _Job):
                self._held.append(item)
            else:
                batch.append(item)
                size += len(item.texts)
        return batch, saw_stop

    def _more_coming(self, gathered: int) -> bool:
        if self._pending is None:
            return True
        return self._pending() > gathered

    def _run_batch(self, batch: list[_Predict]) -> None:
        texts = [t for item in batch for t in item.texts]
        started = time.perf_counter()
        try:
            probs = self._predict(texts)
        except Exception as e:
            if len(batch) == 1:
                if batch[0].future.set_running_or_notify_cancel():
                    batch[0].future.set_exception(e)
                return
            for item in batch:  # one bad request must not fail the others: retry each alone
                self._run_batch([item])
            return
        seconds = time.perf_counter() - started
        start = 0
        for item in batch:
            end = start + len(item.texts)
            if item.future.set_running_or_notify_cancel():
                item.future.set_result(probs[start:end])
            start = end
        self.stats.batches += 1
        self.stats.texts += len(texts)
        self.stats.requests += len(batch)
        if self._on_batch is not None:
            self._on_batch(len(batch), len(texts), seconds)


def _run_job(job: _Job) -> None:
    if not job.future.set_running_or_notify_cancel():
        return
    try:
        job.future.set_result(job.fn())
    except Exception as e:
        job.future.set_exception(e)
