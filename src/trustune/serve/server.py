"""Running the app under uvicorn: one process, or ``workers`` processes sharing the port.

On SIGTERM (or Ctrl-C) uvicorn stops accepting connections, lets the requests in flight finish
(at most ``graceful_timeout_s``), then the app's lifespan drains the model thread and writes the
last audit entries.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trustune.serve.app import ENV_SETTINGS, create_app
from trustune.serve.settings import ServeSettings

if TYPE_CHECKING:
    from trustune.loaded import LoadedRun
    from trustune.serve.auth import KeyStore

__all__ = ["serve", "serve_workers", "uvicorn_config"]


def uvicorn_config(app: Any, settings: ServeSettings, **options: Any) -> Any:
    import uvicorn

    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        timeout_graceful_shutdown=int(settings.graceful_timeout_s),
        access_log=False,  # every request is in the audit log instead (without query or body)
        server_header=False,
        log_level="warning",
        **options,
    )


def serve(classifier: LoadedRun, *, settings: ServeSettings, store: KeyStore | None) -> None:
    """Serve ``classifier`` in this process until SIGTERM or Ctrl-C."""
    import uvicorn

    app = create_app(classifier, settings=settings, store=store)
    uvicorn.Server(uvicorn_config(app, settings)).run()


def serve_workers(
    run: str | Path, *, settings: ServeSettings, key_file: str | None, public_key: str | None
) -> None:
    """Serve ``run`` from ``settings.workers`` processes, each loading its own copy of the model."""
    import uvicorn

    os.environ[ENV_SETTINGS] = json.dumps(
        {
            "run": str(Path(run).resolve()),
            "settings": settings.to_dict(),
            "key_file": key_file,
            "public_key": public_key,
        }
    )
    uvicorn.run(
        "trustune.serve.app:app_from_env",
        factory=True,
        workers=settings.workers,
        host=settings.host,
        port=settings.port,
        timeout_graceful_shutdown=int(settings.graceful_timeout_s),
        access_log=False,
        server_header=False,
        log_level="warning",
    )
