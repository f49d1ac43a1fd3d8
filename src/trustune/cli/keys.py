"""`trustune keys`: API keys of the HTTP service — create (secret shown once), list, revoke."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from trustune.cli.render import err_console, out_console

if TYPE_CHECKING:
    from trustune.store import ApiKey, Store

__all__ = ["add_db_argument", "add_parser", "open_store"]

_DB_HELP = (
    "the database of keys and the audit log: sqlite:///PATH or postgresql://USER:PASSWORD@HOST/DB "
    "(default: $TRUSTUNE_DB, else ./trustune.db)"
)


def add_db_argument(p: argparse.ArgumentParser) -> None:
    """The ``--db URL`` option shared by `keys` and `audit log`."""
    p.add_argument("--db", metavar="URL", default=None, help=_DB_HELP)


def open_store(args: argparse.Namespace, *, create: bool = False) -> Store:
    """The store named by ``--db`` (or the default); a new SQLite file only with ``create``."""
    from trustune.store import Store

    return Store.open(args.db, create=create)


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "keys",
        help="API keys of `trustune serve`: create, list, revoke",
        description="Manage the API keys of the HTTP service. A key's secret is shown once, at "
        "creation; the database keeps only its SHA-256 hash. Revocation takes effect at once on "
        "every server sharing the database.",
    )
    actions = p.add_subparsers(dest="keys_action", metavar="ACTION", required=True)

    create = actions.add_parser(
        "create",
        help="create a key and print its secret (once)",
        description="Create an API key. Roles: predict (labels), explain (labels and word "
        "scores), admin (everything). The secret is printed once and cannot be recovered.",
    )
    create.add_argument("--name", required=True, help="who or what the key is for")
    create.add_argument("--role", required=True, help="predict, explain or admin")
    create.add_argument(
        "--expires", metavar="WHEN", help="a duration (30d, 12h, 2w) or an ISO date/time (UTC)"
    )
    create.add_argument(
        "--rate", type=float, default=20.0, help="requests per second, refilled (default: 20)"
    )
    create.add_argument(
        "--burst", type=int, default=40, help="requests allowed at once in a burst (default: 40)"
    )
    create.add_argument("--json", action="store_true", help="print the key and secret as JSON")
    add_db_argument(create)
    create.set_defaults(handler=_run_create)

    listing = actions.add_parser(
        "list", help="list the keys (never their secrets)", description="List the API keys."
    )
    listing.add_argument("--json", action="store_true", help="print the keys as JSON")
    listing.add_argument(
        "--active", action="store_true", help="only keys neither revoked nor expired"
    )
    add_db_argument(listing)
    listing.set_defaults(handler=_run_list)

    revoke = actions.add_parser(
        "revoke",
        help="revoke a key at once",
        description="Revoke an API key: every server sharing the database refuses it from "
        "its next request on.",
    )
    revoke.add_argument("id", metavar="ID", help="the key id, as `trustune keys list` shows it")
    add_db_argument(revoke)
    revoke.set_defaults(handler=_run_revoke)


def _when(value: datetime | None) -> str:
    if value is None:
        return "never"
    return value.strftime("%Y-%m-%d %H:%M:%S UTC")


def _run_create(args: argparse.Namespace) -> int:
    from trustune.store import Role, parse_expiry

    role = Role.parse(args.role)
    expires_at = None if args.expires is None else parse_expiry(args.expires)
    with open_store(args, create=True) as store:
        key, secret = store.create_key(
            name=args.name, role=role, expires_at=expires_at, rate_per_s=args.rate,
            burst=args.burst,
        )  # fmt: skip
    if args.json:
        print(json.dumps({**key.to_json(), "secret": str(secret)}))
    else:
        out_console.print(
            f"created key {key.id} ({key.name}, role {key.role.value}, expires "
            f"{_when(key.expires_at)}, {key.rate_per_s:g} requests/s, burst {key.burst})",
            markup=False, soft_wrap=True,
        )  # fmt: skip
        print(str(secret), flush=True)
    err_console.print(
        "This is the only time the secret is shown: store it now (e.g. in a secrets manager). "
        "Only its hash is kept; if it is lost, revoke the key and create a new one.",
        markup=False, soft_wrap=True,
    )  # fmt: skip
    return 0


def _run_list(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        found = store.list_keys()
    now = datetime.now(UTC)
    if args.active:
        found = [key for key in found if key.active(now)]
    if args.json:
        print(json.dumps([{**key.to_json(), "status": key.status(now)} for key in found]))
        return 0
    if not found:
        out_console.print("no API keys yet; create one with `trustune keys create`", markup=False)
        return 0
    out_console.print(_table(found, now))
    return 0


def _table(found: list[ApiKey], now: datetime) -> Any:
    """One row per key in under 80 columns: times relative to now (exact ones with --json)."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    table = Table(
        title="API keys", caption="exact times (UTC): trustune keys list --json",
        box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True,
    )  # fmt: skip
    table.add_column("id", no_wrap=True)
    table.add_column("name", overflow="fold")
    for column in ("role", "status", "created", "expires", "rate/s", "burst"):
        table.add_column(column, no_wrap=True)
    for key in found:
        expires = "never" if key.expires_at is None else _relative(key.expires_at, now)
        table.add_row(
            key.id, Text(key.name), key.role.value, key.status(now),
            _relative(key.created_at, now), expires, f"{key.rate_per_s:g}", str(key.burst),
        )  # fmt: skip
    return table


def _relative(when: datetime, now: datetime) -> str:
    """``3d ago`` or ``in 11h``: the largest whole unit of the distance from now."""
    seconds = abs((when - now).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            span = f"{int(seconds // size)}{unit}"
            break
    else:
        return "now"
    return f"in {span}" if when > now else f"{span} ago"


def _run_revoke(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        before = store.get_key(args.id.strip())
        key = store.revoke_key(args.id)
    if before is not None and before.revoked_at is not None:
        out_console.print(
            f"key {key.id} ({key.name}) was already revoked at {_when(key.revoked_at)}",
            markup=False, soft_wrap=True,
        )  # fmt: skip
        return 0
    out_console.print(
        f"revoked key {key.id} ({key.name}) at {_when(key.revoked_at)}; servers sharing the "
        "database refuse it from now on",
        markup=False, soft_wrap=True,
    )  # fmt: skip
    return 0
