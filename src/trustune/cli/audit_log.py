"""`trustune audit log` and `trustune audit prune`: the requests the HTTP service recorded, as
a table or JSON, and the retention of that log."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from typing import Any

from trustune.cli.keys import add_db_argument, open_store
from trustune.cli.render import out_console

__all__ = ["add_log_parser", "add_prune_parser"]

DEFAULT_LIMIT = 100


def add_log_parser(sub: Any) -> None:
    p = sub.add_parser(
        "log",
        help="the service's audit log: every request, who made it and how it went",
        description="Show the audit log of `trustune serve`: time, key id, route, status, "
        "latency and number of texts of every request (the raw text only where the server "
        "was started with raw-text logging enabled). Oldest first; the latest --limit entries.",
    )
    p.add_argument(
        "--since", metavar="WHEN", help="a duration back from now (1h, 2d) or an ISO date/time"
    )
    p.add_argument(
        "--limit", type=int, default=DEFAULT_LIMIT, metavar="N",
        help=f"at most the latest N entries (default: {DEFAULT_LIMIT})",
    )  # fmt: skip
    p.add_argument("--json", action="store_true", help="print the entries as JSON")
    add_db_argument(p)
    p.set_defaults(handler=_run_log)


def _run_log(args: argparse.Namespace) -> int:
    from trustune.errors import StoreError
    from trustune.store import parse_since

    if args.limit < 1:
        raise StoreError(f"--limit {args.limit} is not allowed; pass 1 or more")
    since = None if args.since is None else parse_since(args.since)
    with open_store(args) as store:
        entries = store.audit_entries(since=since, limit=args.limit)
    if args.json:
        print(json.dumps([entry.to_json() for entry in entries]))
        return 0
    if not entries:
        out_console.print("no audit entries" + ("" if since is None else " in that time"))
        return 0
    from rich.table import Table
    from rich.text import Text

    with_text = any(entry.text is not None for entry in entries)
    table = Table(title=f"audit log ({len(entries)} entries, oldest first)")
    columns = ["time (UTC)", "key", "route", "status", "latency ms", "texts"]
    for column in [*columns, "text"] if with_text else columns:
        table.add_column(column)
    for entry in entries:
        row: list[str | Text] = [
            entry.time.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3], entry.key_id or "-",
            Text(entry.route), str(entry.status), f"{entry.latency_ms:.1f}", str(entry.n_texts),
        ]  # fmt: skip
        if with_text:
            row.append(Text(entry.text or ""))
        table.add_row(*row)
    out_console.print(table)
    return 0


def add_prune_parser(sub: Any) -> None:
    p = sub.add_parser(
        "prune",
        help="delete audit-log entries older than a given age (retention)",
        description="Delete the entries of the service's audit log older than --older-than, in "
        "one transaction; a running server keeps writing new entries meanwhile. Run it on a "
        "schedule (cron, a systemd timer) to keep a retention period.",
    )
    p.add_argument(
        "--older-than", required=True, metavar="WHEN",
        help="an age (90d, 12w) or an ISO date/time: entries before it are deleted",
    )  # fmt: skip
    p.add_argument(
        "--dry-run", action="store_true", help="only count the entries that would be deleted"
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    add_db_argument(p)
    p.set_defaults(handler=_run_prune)


def _run_prune(args: argparse.Namespace) -> int:
    from trustune.errors import StoreError
    from trustune.store import parse_since

    before = parse_since(args.older_than, flag="--older-than")
    if before > datetime.now(UTC):
        raise StoreError(
            f"--older-than {args.older_than!r} is in the future and would delete every entry; "
            "pass an age such as 90d or a past date"
        )
    with open_store(args) as store:
        count = store.prune_audit(before=before, dry_run=args.dry_run)
    if args.json:
        print(json.dumps({"before": before.isoformat(), "dry_run": args.dry_run, "entries": count}))
        return 0
    verb = "would delete" if args.dry_run else "deleted"
    out_console.print(f"{verb} {count} audit entries older than {before:%Y-%m-%d %H:%M:%S} UTC")
    return 0
