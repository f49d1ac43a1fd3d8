"""Prometheus metrics of one server (its own registry, so several apps can live in one process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["CONTENT_TYPE", "ServeMetrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 1024, 4096)


class ServeMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "trustune_requests", "HTTP requests answered", ("route", "status"),
            registry=self.registry,
        )  # fmt: skip
        self.latency = Histogram(
            "trustune_request_seconds", "time to answer a request", ("route",),
            buckets=_LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.texts = Counter(
            "trustune_texts", "texts classified or explained", ("route",), registry=self.registry
        )
        self.batch_texts = Histogram(
            "trustune_batch_texts", "texts per forward pass of the micro-batcher",
            buckets=_BATCH_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.batch_requests = Histogram(
            "trustune_batch_requests", "requests coalesced into one forward pass",
            buckets=_BATCH_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.batch_seconds = Histogram(
            "trustune_batch_seconds", "time of one batched forward pass",
            buckets=_LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.in_flight = Gauge(
            "trustune_in_flight", "requests being handled now, bodies still arriving included",
            registry=self.registry,
        )  # fmt: skip
        self.audit_written = Counter(
            "trustune_audit_entries_written", "audit entries written to the store",
            registry=self.registry,
        )  # fmt: skip
        self.audit_retries = Counter(
            "trustune_audit_write_retries", "audit writes that failed and were tried again",
            registry=self.registry,
        )  # fmt: skip
        self.audit_dropped = Counter(
            "trustune_audit_dropped", "audit entries that could not be written (see the log)",
            registry=self.registry,
        )  # fmt: skip

    def observe_batch(self, requests: int, texts: int, seconds: float) -> None:
        self.batch_requests.observe(requests)
        self.batch_texts.observe(texts)
        self.batch_seconds.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
