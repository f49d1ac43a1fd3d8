"""Times the commands accept: durations (``90m``, ``12h``, ``30d``, ``2w``) or ISO 8601 dates."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from trustune.errors import StoreError

__all__ = ["parse_duration", "parse_expiry", "parse_since"]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_FORMS = "a duration such as 30m, 12h, 30d, 2w or an ISO date/time such as 2027-01-31"


def parse_duration(text: str) -> timedelta | None:
    """``30d`` → 30 days; None when ``text`` is not a duration."""
    match = _DURATION.match(text)
    if match is None:
        return None
    return timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2).lower()])


def _parse_iso(text: str) -> datetime | None:
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    # A time without a zone is UTC; a date alone is its midnight, UTC.
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def parse_expiry(text: str, *, now: datetime | None = None) -> datetime:
    """When a key expires: ``now`` + a duration, or an ISO date/time (UTC unless it says)."""
    now = now or datetime.now(UTC)
    try:
        duration = parse_duration(text)
        when = now + duration if duration is not None else _parse_iso(text)
    except OverflowError:
        when = None
    if when is None:
        raise StoreError(f"cannot read --expires {text!r}; pass {_FORMS}")
    if when <= now:
        raise StoreError(f"--expires {text!r} is not in the future; pass a later time")
    return when


def parse_since(text: str, *, now: datetime | None = None, flag: str = "--since") -> datetime:
    """A time back from ``now``: ``now`` − a duration (``1h`` = an hour ago), or an ISO time;
    ``flag`` names the option in the error message."""
    now = now or datetime.now(UTC)
    try:
        duration = parse_duration(text)
        when = now - duration if duration is not None else _parse_iso(text)
    except OverflowError:
        when = None
    if when is None:
        raise StoreError(f"cannot read {flag} {text!r}; pass {_FORMS}")
    return when
