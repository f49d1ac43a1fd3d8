"""Dynamic micro-batching: concurrent predict requests coalesced into one forward pass, fairly.

One model thread owns the model. Requests queue up per owner (the API key; without one, each
request is its own owner). Each forward pass takes at most ``max_batch`` texts, round-robin over
the owners and, within an owner, over its requests: a large request is cut into pieces that
alternate with everyone else's, so one key sending 10,000 texts cannot hold the model while
another key's one text waits. While more predict requests are known to be on their way (counted
by the server as their bodies arrive) a batch that is not full waits for them, at most
``max_wait_ms``; a lone client never waits. A request whose future is cancelled (its client went
away) is dropped from the queue: its remaining pieces never run.

The batch runs through the library's own inference path (``TextClassifier.predict``), which sorts
texts by length so texts of similar length share a padded forward pass. Other work on the model
(explanations) runs on the same thread, one job at a time, taking turns with the batches.
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

__all__ = ["BatchStats", "MicroBatcher"]

PredictFn = Callable[[list[Any]], Sequence[Any]]  # one result per input, in order

_sequence = itertools.count()  # arrival order of requests and jobs (next() is atomic in CPython)


@dataclass(eq=False)
class _Predict:
    texts: list[Any]  # texts, or (text, second text) tuples
    owner: Hashable
    future: Future[Sequence[Any]] = field(default_factory=Future)
    seq: int = field(default_factory=lambda: next(_sequence))
    results: list[Any] = field(default_factory=list)
    scheduled: int = 0  # texts handed to a batch so far
    done: int = 0  # texts whose results are in
    finished: bool = False

    def __post_init__(self) -> None:
        self.results = [None] * len(self.texts)


@dataclass(eq=False)
class _Job:
    fn: Callable[[], Any]
    future: Future[Any] = field(default_factory=Future)
    seq: int = field(default_factory=lambda: next(_sequence))


@dataclass(frozen=True)
class _Piece:
    request: _Predict
    start: int
    end: int


_STOP = object()


@dataclass
class BatchStats:
    """Counters the metrics endpoint reads."""

    batches: int = 0
    texts: int = 0
    requests: int = 0  # answered (each once, however many pieces it was cut into)
    cancelled: int = 0  # dropped because their future was cancelled before they finished


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
        # Owned by the model thread: requests not fully scheduled, per owner in turn order.
        self._owners: OrderedDict[Hashable, deque[_Predict]] = OrderedDict()
        self._jobs: deque[_Job] = deque()
        self._unfinished = 0  # predict requests taken in and not yet answered
        self._unscheduled = 0  # their texts not yet handed to a batch
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

    def submit(self, texts: list[Any], *, owner: Hashable | None = None) -> Future[Sequence[Any]]:
        """The results of ``texts`` (one per text); cancel the future to drop what has not run.

        Requests of one ``owner`` (an API key id) share its turns; None: the request is its own.
        """
        item = _Predict(list(texts), owner=object() if owner is None else owner)
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
        last_was_job: bool | None = None
        while True:
            if not self._owners and not self._jobs:
                if stopping:
                    return
                stopping = self._take(self._queue.get()) or stopping
            stopping = self._drain() or stopping
            self._drop_cancelled()
            if not self._owners and not self._jobs:
                continue
            if self._next_is_job(last_was_job):
                _run_job(self._jobs.popleft())
                last_was_job = True
                continue
            if not stopping:
                stopping = self._wait_for_more()
                self._drop_cancelled()
                if not self._owners:
                    continue
            self._run_batch(self._assemble())
            last_was_job = False

    def _take(self, item: Any) -> bool:
        """File one queued item; True when it is the stop signal."""
        if item is _STOP:
            return True
        if isinstance(item, _Job):
            self._jobs.append(item)
        else:
            self._owners.setdefault(item.owner, deque()).append(item)
            self._unfinished += 1
            self._unscheduled += len(item.texts)
        return False

    def _drain(self) -> bool:
        stopping = False
        while True:
            try:
                stopping = self._take(self._queue.get_nowait()) or stopping
            except queue.Empty:
                return stopping

    def _next_is_job(self, last_was_job: bool | None) -> bool:
        if not self._jobs or not self._owners:
            return bool(self._jobs)
        if last_was_job is None:  # first turn: whichever came first
            oldest = min(r.seq for requests in self._owners.values() for r in requests)
            return self._jobs[0].seq < oldest
        return not last_was_job  # both waiting: they take turns

    def _wait_for_more(self) -> bool:
        """Wait (at most ``max_wait_ms``) for requests on their way while the batch is not full."""
        stopping = False
        deadline = time.monotonic() + self.max_wait_s
        while self._unscheduled < self.max_batch and self._more_coming():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                item = self._queue.get(timeout=min(remaining, 0.0005))
            except queue.Empty:
                continue
            if self._take(item):
                stopping = True
                break
        return stopping

    def _more_coming(self) -> bool:
        if self._pending is None:
            return True
        return self._pending() > self._unfinished

    def _drop_cancelled(self) -> None:
        for owner in list(self._owners):
            requests = self._owners[owner]
            for request in [r for r in requests if r.future.cancelled()]:
                requests.remove(request)
                self._unscheduled -= len(request.texts) - request.scheduled
                self._finish(request, cancelled=True)
            if not requests:
                del self._owners[owner]

    def _assemble(self) -> list[_Piece]:
        """Up to ``max_batch`` texts, taken round-robin over owners and their requests."""
        pieces: list[_Piece] = []
        room = self.max_batch
        while room > 0 and self._owners:
            owner, requests = next(iter(self._owners.items()))
            request = requests.popleft()
            n = min(len(request.texts) - request.scheduled, room)
            pieces.append(_Piece(request, request.scheduled, request.scheduled + n))
            request.scheduled += n
            self._unscheduled -= n
            room -= n
            if request.scheduled < len(request.texts):
                requests.append(request)  # its next piece after the owner's other requests
            del self._owners[owner]
            if requests:
                self._owners[owner] = requests  # the owner's next turn: after everyone else's
        return pieces

    def _run_batch(self, pieces: list[_Piece]) -> None:
        texts = [t for p in pieces for t in p.request.texts[p.start : p.end]]
        started = time.perf_counter()
        try:
            probs = self._predict(texts)
        except Exception as e:
            if len(pieces) == 1:
                self._fail(pieces[0].request, e)
                return
            for piece in pieces:  # one bad request must not fail the others: retry each alone
                self._run_batch([piece])
            return
        seconds = time.perf_counter() - started
        start = 0
        for piece in pieces:
            request, size = piece.request, piece.end - piece.start
            if not request.finished:
                request.results[piece.start : piece.end] = probs[start : start + size]
                request.done += size
                if request.done == len(request.texts):
                    self._finish(request)
            start += size
        self.stats.batches += 1
        self.stats.texts += len(texts)
        if self._on_batch is not None:
            self._on_batch(len(pieces), len(texts), seconds)

    def _fail(self, request: _Predict, error: Exception) -> None:
        requests = self._owners.get(request.owner)
        if requests is not None and request in requests:  # its other pieces must not run
            requests.remove(request)
            self._unscheduled -= len(request.texts) - request.scheduled
            if not requests:
                del self._owners[request.owner]
        self._finish(request, error=error)

    def _finish(
        self, request: _Predict, *, error: Exception | None = None, cancelled: bool = False
    ) -> None:
        if request.finished:
            return
        request.finished = True
        self._unfinished -= 1
        if cancelled or not request.future.set_running_or_notify_cancel():
            self.stats.cancelled += 1
            return
        if error is not None:
            request.future.set_exception(error)
        else:
            request.future.set_result(request.results)
            self.stats.requests += 1


def _run_job(job: _Job) -> None:
    if not job.future.set_running_or_notify_cancel():
        return
    try:
        job.future.set_result(job.fn())
    except Exception as e:
        job.future.set_exception(e)
