"""What one running server holds: the model, its batcher, the key checks, the audit writer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from trustune.serve.audit import AuditWriter
from trustune.serve.auth import Authenticator, KeyStore
from trustune.serve.batcher import MicroBatcher
from trustune.serve.concurrency import InFlight
from trustune.serve.metrics import ServeMetrics
from trustune.serve.ratelimit import RateLimiter
from trustune.serve.settings import ServeSettings

if TYPE_CHECKING:
    from trustune.loaded import LoadedRun
    from trustune.serve.schemas import ModelInfo

__all__ = ["ServerState"]


@dataclass
class ServerState:
    classifier: LoadedRun
    settings: ServeSettings
    store: KeyStore | None
    batcher: MicroBatcher
    authenticator: Authenticator | None
    rate_limiter: RateLimiter  # per API key
    address_limiter: RateLimiter  # per client address, for requests without a valid key
    audit: AuditWriter | None
    metrics: ServeMetrics
    in_flight: InFlight
    model_info: ModelInfo
    methods: tuple[str, ...]
    draining: bool = False

    @property
    def ready(self) -> bool:
        return self.batcher.running and not self.draining
