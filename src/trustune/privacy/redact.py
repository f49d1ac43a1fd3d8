"""PII redaction: identifiers in texts replaced by a placeholder naming their kind.

Run on the texts before training and before prediction (``--redact-pii``), so the model
never sees them. Each kind is a pattern plus, where one exists, a check that cuts false
positives: card numbers must pass the Luhn checksum, IBANs the ISO 7064 mod-97 check, IP
addresses must parse. Only counts per kind are reported, never the matched text.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trustune.data import TrainingData

__all__ = [
    "PII_KINDS",
    "RedactionResult",
    "luhn_valid",
    "redact_text",
    "redact_texts",
    "redact_training_data",
]


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum of a card number (digits only)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _card(match: str) -> bool:
    digits = re.sub(r"\D", "", match)
    return 13 <= len(digits) <= 19 and len(set(digits)) > 1 and luhn_valid(digits)


def _iban(match: str) -> bool:
    compact = match.replace(" ", "").upper()
    if not 15 <= len(compact) <= 34:
        return False
    rotated = compact[4:] + compact[:4]
    number = "".join(str(int(c, 36)) for c in rotated)
    return int(number) % 97 == 1


def _ip(match: str) -> bool:
    try:
        ipaddress.ip_address(match)
    except ValueError:
        return False
    return True


def _phone(match: str) -> bool:
    digits = re.sub(r"\D", "", match)
    return 9 <= len(digits) <= 15


def _ssn(match: str) -> bool:
    area, group, serial = match.split("-")
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


@dataclass(frozen=True)
class _Kind:
    name: str
    pattern: re.Pattern[str]
    valid: Callable[[str], bool] | None = None

    @property
    def placeholder(self) -> str:
        return f"[{self.name.upper()}]"


# Order matters: e-mail addresses first (their digits are not phone numbers), then the kinds
# with checksums, then the looser ones.
_KINDS: tuple[_Kind, ...] = (
    _Kind("email", re.compile(r"(?<![\w.+-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")),
    _Kind("iban", re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b"), _iban),
    _Kind("card", re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])"), _card),
    _Kind("ssn", re.compile(r"\b\d{3}-\d{2}-\d{4}\b"), _ssn),
    _Kind("ip", re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b|(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])"), _ip),
    _Kind(
        "phone",
        re.compile(
            r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,5}\)[ .-]?)?\d{2,5}(?:[ .-]\d{2,5}){1,4}(?![\w])"
            r"|(?<![\w+])\+\d{8,15}\b"
        ),
        _phone,
    ),
)  # fmt: skip

PII_KINDS: tuple[str, ...] = tuple(k.name for k in _KINDS)


@dataclass
class RedactionResult:
    """Redacted texts and how many identifiers of each kind were replaced."""

    texts: list[str]
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PII_KINDS, 0))
    texts_changed: int = 0

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def summary(self) -> dict[str, Any]:
        """Counts only (safe for logs and manifests)."""
        return {
            "counts": dict(self.counts),
            "total": self.total,
            "texts_changed": self.texts_changed,
        }


def redact_text(text: str, counts: dict[str, int] | None = None) -> str:
    """``text`` with every identifier replaced by ``[EMAIL]``, ``[PHONE]``, ``[CARD]`` ..."""
    for kind in _KINDS:

        def replace(match: re.Match[str], kind: _Kind = kind) -> str:
            found = match.group(0)
            if kind.valid is not None and not kind.valid(found):
                return found
            if counts is not None:
                counts[kind.name] += 1
            return kind.placeholder

        text = kind.pattern.sub(replace, text)
    return text


def redact_texts(texts: Sequence[str]) -> RedactionResult:
    """Redact each text; the counts say how many of each kind were replaced."""
    result = RedactionResult(texts=[])
    for text in texts:
        redacted = redact_text(text, result.counts)
        result.texts_changed += redacted != text
        result.texts.append(redacted)
    return result


def redact_training_data(data: TrainingData) -> dict[str, dict[str, Any]]:
    """Redact the train and validation texts in place; counts per split and kind."""
    out = {}
    for name, part in (("train", data.train), ("validation", data.validation)):
        result = redact_texts(part.texts)
        part.texts = result.texts
        out[name] = result.summary()
    return out
