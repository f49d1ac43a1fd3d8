"""Label maps: the ordered set of classes, stable across train, validation and prediction."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from trustune.errors import LabelError
from trustune.messages import shown, shown_names

__all__ = ["LabelMap", "canonical_label"]

Label = int | str
_INT = re.compile(r"^[+-]?\d{1,100}$")  # longer digit strings stay text (int() refuses 4,300+)


def canonical_label(value: Any) -> str:
    """The string a label is compared by: ``1``, ``1.0`` and ``"1"`` are the same class."""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value).strip()
    if _INT.match(text):
        return str(int(text))
    return text


@dataclass(frozen=True)
class LabelMap:
    """Classes in index order; integer labels sort numerically and stay integers."""

    names: tuple[Label, ...]
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "_index", {canonical_label(n): i for i, n in enumerate(self.names)}
        )

    @classmethod
    def from_values(cls, values: Iterable[Any]) -> LabelMap:
        """Build from raw label values; needs at least two classes."""
        keys = sorted({canonical_label(v) for v in values})
        if all(_INT.match(k) for k in keys):
            names: tuple[Label, ...] = tuple(sorted(int(k) for k in keys))
        else:
            names = tuple(keys)
        if len(names) < 2:
            only = names[0] if names else "(none)"
            raise LabelError(
                f"the training data has one class only ({shown(only)}); a classifier needs at "
                "least two"
            )
        return cls(names)

    def __len__(self) -> int:
        return len(self.names)

    def encode(self, values: Sequence[Any], *, source: str) -> list[int]:
        """Indices of raw labels; labels unseen in training are an error that lists them."""
        unseen = sorted({canonical_label(v) for v in values} - set(self._index))
        if unseen:
            raise LabelError(
                f"{source} has labels unseen in training: {shown_names(unseen, most=10)}. "
                f"The model knows {shown_names(self.names)}"
            )
        return [self._index[canonical_label(v)] for v in values]

    def index_of(self, value: Any) -> int:
        """The index of one label; unknown labels list the known ones."""
        key = canonical_label(value)
        if key not in self._index:
            raise LabelError(
                f"unknown label {shown(value)}; the labels are {shown_names(self.names)}"
            )
        return self._index[key]

    def id2label(self) -> dict[int, str]:
        """The Hugging Face ``config.id2label`` mapping."""
        return {i: str(n) for i, n in enumerate(self.names)}
