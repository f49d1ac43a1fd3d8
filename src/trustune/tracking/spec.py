"""``--track`` specs: ``KIND`` or ``KIND:TARGET`` (``mlflow:sqlite:///runs/mlflow.db``,
``tensorboard:tb``), and their safe form for messages.

A tracking URI may hold a password (``http://user:pw@host``); every message, repr and warning
shows it through :func:`safe_target`, which replaces the password with ``***``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from trustune.errors import ConfigError
from trustune.messages import shortened

__all__ = ["TrackSpec", "parse_track_spec", "reason_of", "safe_target", "scrub"]

_KIND = re.compile(r"^[a-z][a-z0-9_-]*$")
# user:password@ in a URL (the password may not hold "@" or "/")
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^:/@\s]*):[^@/\s]*@")


def safe_target(text: str) -> str:
    """``text`` with the password of any ``scheme://user:password@`` in it shown as ``***``."""
    return _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)


def scrub(text: str, secret: str | None) -> str:
    """A message from a tracking library, safe to show: the password of ``secret`` (a URI)
    removed wherever it appears, whether inside a URL or on its own."""
    text = safe_target(text)
    match = _USERINFO.search(secret or "")
    if match is not None:
        password = match.group(0)[len(match["scheme"]) + len(match["user"]) + 1 : -1]
        if password:
            text = text.replace(password, "***")
    return text


def reason_of(error: BaseException, secret: str | None, *, limit: int = 200) -> str:
    """A library's error as one short line, safe to show (``secret``'s password removed)."""
    text = str(error).strip()
    return shortened(
        scrub(text.splitlines()[0] if text else type(error).__name__, secret), limit=limit
    )


@dataclass(frozen=True, repr=False)
class TrackSpec:
    """One ``--track`` value: the tracker's registered name and its target (a URI, a folder;
    None: the tracker's default)."""

    kind: str
    target: str | None = None

    def __str__(self) -> str:
        """The spec as given, its password hidden."""
        return self.kind if self.target is None else f"{self.kind}:{safe_target(self.target)}"

    def __repr__(self) -> str:
        return f"TrackSpec({str(self)!r})"


def parse_track_spec(text: str, *, known: Mapping[str, str]) -> TrackSpec:
    """``mlflow``, ``mlflow:URI``, ``tensorboard``, ``tensorboard:DIR``; ``known``: the
    registered trackers (name -> what their target is), listed when ``text`` names none."""
    kind, sep, target = text.strip().partition(":")
    shown = safe_target(text.strip())
    forms = " or ".join(f"{name}[:{what}]" for name, what in known.items())
    if not _KIND.match(kind) or kind not in known:
        raise ConfigError(f"--track {shown}: unknown tracker {safe_target(kind)!r}; give {forms}")
    if sep and not target.strip():
        raise ConfigError(
            f"--track {shown} has nothing after the colon; give --track {kind} for its default "
            f"or --track {kind}:{known[kind]}"
        )
    return TrackSpec(kind, target.strip() if sep else None)
