"""The micro-batcher and the token bucket on their own (no model, no HTTP)."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest

pytest.importorskip("fastapi")

from trustune.serve import MicroBatcher, RateLimiter, TokenBucket


def _upper(calls: list[list[str]]):  # type: ignore[no-untyped-def]
    def predict(texts: list[str]) -> Sequence[str]:
        calls.append(list(texts))
        if any(t == "boom" for t in texts):
            raise ValueError("boom")
        return [t.upper() for t in texts]

    return predict


def test_concurrent_requests_share_one_forward_pass() -> None:
    calls: list[list[str]] = []
    batcher = MicroBatcher(_upper(calls), max_batch=32, max_wait_ms=0)
    batcher.start()
    release = threading.Event()
    batcher.run(release.wait)  # the model thread is busy while the requests queue up
    futures = [batcher.submit([f"r{i}a", f"r{i}b"]) for i in range(5)]
    release.set()
    results = [f.result(10) for f in futures]
    batcher.stop()
    assert results == [[f"R{i}A", f"R{i}B"] for i in range(5)]
    assert calls == [[f"r{i}{s}" for i in range(5) for s in "ab"]]  # one call for all five
    assert (batcher.stats.batches, batcher.stats.requests, batcher.stats.texts) == (1, 5, 10)


def test_batches_stop_at_max_batch() -> None:
    calls: list[list[str]] = []
    batcher = MicroBatcher(_upper(calls), max_batch=4, max_wait_ms=0)
    batcher.start()
    release = threading.Event()
    batcher.run(release.wait)
    futures = [batcher.submit([str(i), str(i)]) for i in range(4)]
    release.set()
    assert [f.result(10) for f in futures] == [[str(i)] * 2 for i in range(4)]
    batcher.stop()
    assert [len(c) for c in calls] == [4, 4]


def test_one_failing_request_does_not_fail_the_others() -> None:
    calls: list[list[str]] = []
    batcher = MicroBatcher(_upper(calls), max_batch=32, max_wait_ms=0)
    batcher.start()
    release = threading.Event()
    batcher.run(release.wait)
    good, bad = batcher.submit(["ok"]), batcher.submit(["boom"])
    release.set()
    assert good.result(10) == ["OK"]
    with pytest.raises(ValueError, match="boom"):
        bad.result(10)
    batcher.stop()


def test_stop_drains_what_was_submitted() -> None:
    calls: list[list[str]] = []
    batcher = MicroBatcher(_upper(calls), max_batch=2, max_wait_ms=0)
    batcher.start()
    release = threading.Event()
    batcher.run(release.wait)
    futures = [batcher.submit([str(i)]) for i in range(7)]
    threading.Timer(0.05, release.set).start()
    batcher.stop()  # returns after every queued request has its answer
    assert [f.result(0) for f in futures] == [[str(i)] for i in range(7)]
    assert not batcher.running
    with pytest.raises(RuntimeError, match="not running"):
        batcher.submit(["late"])


def test_a_lone_request_does_not_wait_when_nothing_else_is_coming() -> None:
    calls: list[list[str]] = []
    batcher = MicroBatcher(_upper(calls), max_batch=32, max_wait_ms=60_000, pending=lambda: 1)
    batcher.start()
    assert batcher.submit(["only"]).result(10) == ["ONLY"]  # not after 60 s
    batcher.stop()


def test_token_bucket_burst_then_rate() -> None:
    now = [0.0]
    limiter = RateLimiter(clock=lambda: now[0])
    waits = [limiter.acquire("k", rate_per_s=2.0, burst=3) for _ in range(4)]
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert waits[3] == pytest.approx(0.5)
    now[0] += 0.5
    assert limiter.acquire("k", rate_per_s=2.0, burst=3) == 0.0
    assert limiter.acquire("other", rate_per_s=2.0, burst=3) == 0.0  # buckets are per key
    now[0] += 100
    assert [limiter.acquire("k", rate_per_s=2.0, burst=3) for _ in range(4)][3] > 0  # capped


def test_token_bucket_refills_fractionally() -> None:
    bucket = TokenBucket(rate_per_s=10.0, burst=1, tokens=0.0, updated=0.0)
    assert bucket.take(0.05) == pytest.approx(0.05)
    assert bucket.take(0.1) == 0.0
