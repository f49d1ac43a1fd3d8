"""Serving a run over HTTP: API keys, quotas, audit log, dynamic micro-batching, a web console.

- :mod:`~trustune.serve.app`: the FastAPI app around one loaded classifier (``create_app``)
- :mod:`~trustune.serve.settings`: what ``trustune serve`` can be told (``ServeSettings``)
- :mod:`~trustune.serve.routes` and :mod:`~trustune.serve.schemas`: the HTTP API and its bodies
- :mod:`~trustune.serve.auth`, :mod:`~trustune.serve.ratelimit`: keys, roles, token buckets
- :mod:`~trustune.serve.concurrency`, :mod:`~trustune.serve.bodylimit`: 503 and 413 limits
- :mod:`~trustune.serve.batcher`: concurrent requests coalesced into one forward pass
- :mod:`~trustune.serve.recording`, :mod:`~trustune.serve.audit`, :mod:`~trustune.serve.metrics`:
  every request in the audit log and the Prometheus metrics
- :mod:`~trustune.serve.console`: the web page at ``/``
- :mod:`~trustune.serve.server`: running it under uvicorn, with a graceful SIGTERM

Needs the ``serve`` extra: ``pip install 'trustune[serve]'``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from trustune.serve.settings import ServeSettings, is_loopback

if TYPE_CHECKING:  # type checkers see the names; at run time they are imported on first use
    from trustune.serve.app import create_app
    from trustune.serve.batcher import MicroBatcher
    from trustune.serve.ratelimit import RateLimiter, TokenBucket
    from trustune.serve.server import serve

__all__ = [
    "MicroBatcher",
    "RateLimiter",
    "ServeSettings",
    "TokenBucket",
    "create_app",
    "is_loopback",
    "serve",
]

# The settings are read without the server's libraries (the CLI builds `trustune serve`'s flags
# from them on every start); the rest needs the extra, checked on first use.
_LAZY = {
    "create_app": "trustune.serve.app",
    "MicroBatcher": "trustune.serve.batcher",
    "RateLimiter": "trustune.serve.ratelimit",
    "TokenBucket": "trustune.serve.ratelimit",
    "serve": "trustune.serve.server",
}


def _check_extra() -> None:
    try:
        import fastapi as _fastapi  # noqa: F401
        import prometheus_client as _prometheus_client  # noqa: F401
        import uvicorn as _uvicorn  # noqa: F401
    except ImportError as e:  # pragma: no cover - depends on the installation
        raise ImportError(f"trustune serve needs {e.name}: pip install 'trustune[serve]'") from e


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'trustune.serve' has no attribute {name!r}")
    _check_extra()
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later reads skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
