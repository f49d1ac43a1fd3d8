"""The micro-batcher (batching, fairness, cancellation) and the token bucket on their own (no
model, no HTTP)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

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


def _blocked(batcher: MicroBatcher) -> threading.Event:
    """The model thread busy until the returned event is set (so requests queue up meanwhile)."""
    release = threading.Event()
    started = threading.Event()

    def hold() -> None:
        started.set()
        release.wait(30)

    batcher.run(hold)
    assert started.wait(10)
    return release


def test_a_large_request_is_cut_into_pieces_that_alternate_with_other_keys() -> None:
    calls: list[list[str]] = []
    batcher = MicroBatcher(_upper(calls), max_batch=4, max_wait_ms=0)
    batcher.start()
    release = _blocked(batcher)
    big = batcher.submit([f"a{i}" for i in range(10)], owner="key-a")
    small = batcher.submit(["b0"], owner="key-b")
    other = batcher.submit(["c0", "c1"], owner="key-c")
    release.set()
    assert big.result(10) == [f"A{i}" for i in range(10)]
    assert small.result(10) == ["B0"] and other.result(10) == ["C0", "C1"]
    batcher.stop()
    # key a fills the first pass; then b and c go first, a's next piece fills the rest
    assert calls == [
        ["a0", "a1", "a2", "a3"],
        ["b0", "c0", "c1", "a4"],
        ["a5", "a6", "a7", "a8"],
        ["a9"],
    ]
    assert (batcher.stats.requests, batcher.stats.texts) == (3, 13)


def test_requests_of_one_key_take_turns_within_its_share() -> None:
    calls: list[list[str]] = []
    batcher = MicroBatcher(_upper(calls), max_batch=2, max_wait_ms=0)
    batcher.start()
    release = _blocked(batcher)
    first = batcher.submit(["x0", "x1", "x2", "x3"], owner="k")
    second = batcher.submit(["y0"], owner="k")
    release.set()
    assert first.result(10) == ["X0", "X1", "X2", "X3"] and second.result(10) == ["Y0"]
    batcher.stop()
    assert calls == [["x0", "x1"], ["y0", "x2"], ["x3"]]


def test_a_cancelled_request_never_runs_its_remaining_pieces() -> None:
    calls: list[list[str]] = []
    batcher = MicroBatcher(_upper(calls), max_batch=2, max_wait_ms=0)
    batcher.start()
    release = _blocked(batcher)
    doomed = batcher.submit(["d0", "d1", "d2", "d3"], owner="gone")
    kept = batcher.submit(["k0"], owner="here")
    assert doomed.cancel()  # the client went away while it waited
    release.set()
    assert kept.result(10) == ["K0"]
    batcher.stop()
    assert calls == [["k0"]]
    assert (batcher.stats.cancelled, batcher.stats.requests) == (1, 1)


def test_a_request_cancelled_between_its_pieces_stops_there() -> None:
    calls: list[list[str]] = []
    futures: list[Any] = []

    def predict(texts: list[str]) -> Sequence[str]:
        calls.append(list(texts))
        if texts[0] == "d0":  # while the first piece runs, its client disconnects
            futures[0].cancel()
        return [t.upper() for t in texts]

    batcher = MicroBatcher(predict, max_batch=2, max_wait_ms=0)
    batcher.start()
    release = _blocked(batcher)
    futures.append(batcher.submit(["d0", "d1", "d2", "d3", "d4", "d5"], owner="gone"))
    after = batcher.submit(["n0"], owner="next")
    release.set()
    assert after.result(10) == ["N0"]
    batcher.stop()
    assert futures[0].cancelled()
    assert calls == [["d0", "d1"], ["n0"]]  # d2..d5 never reached the model
    assert batcher.stats.cancelled == 1


def test_a_failing_piece_fails_only_its_request() -> None:
    calls: list[list[str]] = []
    batcher = MicroBatcher(_upper(calls), max_batch=2, max_wait_ms=0)
    batcher.start()
    release = _blocked(batcher)
    bad = batcher.submit(["boom", "x", "never", "run"], owner="a")
    good = batcher.submit(["ok"], owner="b")
    release.set()
    with pytest.raises(ValueError, match="boom"):
        bad.result(10)
    assert good.result(10) == ["OK"]
    batcher.stop()
    assert ["never", "run"] not in calls and ["ok"] in calls


def test_explanations_take_turns_with_batches() -> None:
    order: list[str] = []

    def predict(texts: list[str]) -> Sequence[str]:
        order.append("batch " + ",".join(texts))
        return texts

    batcher = MicroBatcher(predict, max_batch=1, max_wait_ms=0)
    batcher.start()
    release = _blocked(batcher)
    predictions = batcher.submit(["p0", "p1", "p2"], owner="a")
    jobs = [batcher.run(lambda i=i: order.append(f"job {i}")) for i in range(2)]
    release.set()
    predictions.result(10)
    for job in jobs:
        job.result(10)
    batcher.stop()
    assert order == ["batch p0", "job 0", "batch p1", "job 1", "batch p2"]


def test_rate_limiter_wait_takes_no_token_and_its_buckets_are_bounded() -> None:
    now = [0.0]
    limiter = RateLimiter(clock=lambda: now[0], max_buckets=3)
    assert limiter.wait("a", rate_per_s=1.0, burst=1) == 0.0  # unseen: a full bucket
    assert limiter.acquire("a", rate_per_s=1.0, burst=1) == 0.0
    assert limiter.wait("a", rate_per_s=1.0, burst=1) == pytest.approx(1.0)
    assert limiter.wait("a", rate_per_s=1.0, burst=1) == pytest.approx(1.0)  # nothing taken
    for name in "bcdefgh":
        limiter.acquire(name, rate_per_s=1.0, burst=5)
    assert len(limiter) <= 3
