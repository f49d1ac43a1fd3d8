"""`trustune serve`: the run over HTTP, with API keys, quotas, audit log and a web console."""

from __future__ import annotations

import argparse
import errno
import socket
from typing import Any

from trustune.cli.common import add_run_argument
from trustune.cli.flags import add_settings_flags, settings_values
from trustune.cli.key_options import (
    add_key_arguments,
    add_public_key_argument,
    key_from_args,
    public_key_from_args,
)
from trustune.errors import ConfigError
from trustune.serve.settings import ServeSettings

__all__ = ["add_parser"]


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "serve",
        help="serve a run over HTTP (API keys, rate limits, audit log, web console)",
        description="Serve a run over HTTP: POST /v1/predict, POST /v1/explain, GET /v1/model, "
        "/healthz, /readyz, /metrics, the OpenAPI docs at /docs and a web console at /. Every /v1 "
        "route needs `Authorization: Bearer KEY` (keys from `trustune keys create`).",
    )
    add_run_argument(p)
    add_settings_flags(p, ServeSettings)
    add_key_arguments(p, purpose="to open an encrypted run")
    add_public_key_argument(p, required=False)
    p.set_defaults(handler=run)


def settings_from_args(args: argparse.Namespace) -> ServeSettings:
    """The server's settings from its flags (generated from ``ServeSettings``'s fields)."""
    return ServeSettings(**settings_values(args, ServeSettings))


def check_address_free(host: str, port: int) -> None:
    """Bind the address as uvicorn will, then let it go: a taken port fails before the model loads."""
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror:
        raise ConfigError(
            f"--host {host} is not an address or name this machine can listen on; pass one such "
            "as 127.0.0.1 with --host"
        ) from None
    for family, kind, proto, _, address in addresses:
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:  # as asyncio does: the IPv4 address is bound apart
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(address)
            except OSError as e:
                raise ConfigError(_bind_problem(where, port, e)) from None


def _bind_problem(where: str, port: int, error: OSError) -> str:
    """The one-line message for an address that cannot be listened on, with the fix."""
    if error.errno == errno.EADDRINUSE:
        return (
            f"{where} is already in use by another program; stop that program or serve on "
            f"another port with --port (e.g. --port {port + 1 if port < 65535 else 8000})"
        )
    if error.errno == errno.EACCES:
        return f"no permission to listen on {where}; choose a port from 1024 up with --port"
    if error.errno == errno.EADDRNOTAVAIL:
        return f"cannot listen on {where}: not an address of this machine; pass one with --host"
    return f"cannot listen on {where}: {error.strerror}; change --host or --port"


def run(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)  # refuses --no-auth off loopback before loading anything
    if settings.threads is not None:  # an ONNX run's session takes its threads when it is opened
        import os

        os.environ["TRUSTUNE_ORT_THREADS"] = str(settings.threads)
    check_address_free(settings.host, settings.port)  # before the model takes seconds to load
    try:
        from trustune.serve import serve
        from trustune.serve.server import serve_workers
    except ImportError as e:
        raise ConfigError(str(e)) from None
    from trustune.cli.render import err_console
    from trustune.store import Store

    public_key = public_key_from_args(args)
    where = f"http://{settings.host}:{settings.port}"
    if settings.workers > 1:
        if args.passphrase:
            raise ConfigError(
                "--workers > 1 cannot ask a passphrase in each worker: use --key-file KEY or set "
                "$TRUSTUNE_PASSPHRASE"
            )
        from trustune.manifest import read_manifest

        read_manifest(args.run)  # a clear error before forking
        err_console.print(f"serving {args.run} on {where} with {settings.workers} workers")
        serve_workers(args.run, settings=settings, key_file=args.key_file, public_key=public_key)
        return 0
    import trustune

    classifier = trustune.load(
        args.run, key=key_from_args(args, required=False), public_key=public_key
    )
    store = Store.open(settings.db_url)
    try:
        auth = "API keys required" if settings.auth else "NO authentication (--no-auth)"
        err_console.print(
            f"serving {args.run} on {where} (console /, docs /docs; {auth}; database {store.url})",
            highlight=False,
        )
        serve(classifier, settings=settings, store=store)
    finally:
        store.close()
    return 0
