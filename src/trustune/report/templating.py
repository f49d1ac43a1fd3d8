"""The report's jinja environment: autoescaping, number filters, and the sections' macros."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import jinja2
from markupsafe import Markup

from trustune.values import finite

__all__ = ["MISSING", "created", "environment", "macro"]

MISSING = "—"
_SHA_PREFIX = 12


def _metric(value: Any, digits: int = 3) -> str:
    """A score with a fixed number of decimals."""
    number = finite(value)
    return MISSING if number is None else f"{number:.{digits}f}"


def _signed(value: Any) -> str:
    """A difference in the targets' unit with its sign: '+0.12', '−1.5e+03', '0'."""
    number = finite(value)
    if number is None:
        return MISSING
    text = f"{abs(number):.4g}"
    return text if float(text) == 0 else ("−" if number < 0 else "+") + text


def _number(value: Any, digits: int = 1) -> str:
    """A measurement with thousands separators."""
    number = finite(value)
    return MISSING if number is None else f"{number:,.{digits}f}"


def _short(value: Any) -> str:
    """A value of the targets' unit in four significant digits: '2.737', '1.2e+04'."""
    number = finite(value)
    return MISSING if number is None else f"{number:.4g}"


def _integer(value: Any) -> str:
    """A count with thousands separators."""
    number = finite(value)
    return MISSING if number is None else f"{round(number):,}"


def _params(value: Any) -> str:
    """A parameter count, short and exact: '22.7 M (22,713,216)'."""
    number = finite(value)
    if number is None:
        return MISSING
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if number >= scale:
            return f"{number / scale:.1f} {suffix} ({round(number):,})"
    return f"{round(number):,}"


def _duration(value: Any) -> str:
    """Seconds as '41.2 s', '12 min 5 s' or '2 h 3 min'."""
    seconds = finite(value)
    if seconds is None:
        return MISSING
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {rest} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def _text(value: Any) -> str:
    """A value as text, with a dash when it is missing."""
    if value is None or isinstance(value, jinja2.Undefined) or value == "":
        return MISSING
    return str(value)


def _sha(value: Any) -> str:
    """The first characters of a hex digest; the full digest goes in a title attribute."""
    return value[:_SHA_PREFIX] if isinstance(value, str) and value else MISSING


def _yesno(value: Any) -> str:
    """A boolean as 'yes' / 'no'."""
    return ("yes" if value else "no") if isinstance(value, bool) else MISSING


def created(value: Any) -> str:
    """An ISO timestamp shown in UTC to the minute; anything unparsable as given."""
    if not isinstance(value, str):
        return MISSING
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    if moment.tzinfo is None:
        return moment.strftime("%Y-%m-%d %H:%M")
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


@functools.cache
def environment() -> jinja2.Environment:
    """The jinja environment: autoescaping, lenient about missing keys (they render as a dash)."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("trustune.report", "templates"),
        autoescape=True,
        undefined=jinja2.ChainableUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        metric=_metric,
        signed=_signed,
        number=_number,
        short=_short,
        integer=_integer,
        params=_params,
        duration=_duration,
        text=_text,
        sha=_sha,
        yesno=_yesno,
    )
    return env


def macro(template: str, name: str) -> Callable[..., Markup]:
    """A macro of one of the report's templates, as a function returning its HTML."""
    found = getattr(environment().get_template(template).module, name)

    def render(*args: Any, **kwargs: Any) -> Markup:
        return Markup(found(*args, **kwargs))

    return render
