"""Fonts for the labels the report draws in its charts, chosen so every character has a glyph.

matplotlib draws with DejaVu Sans, which has no Chinese, Japanese, Thai, ... glyphs. For the
labels of a run this picks installed fonts that cover their characters (matplotlib falls back
along a list of families glyph by glyph). A label that no installed font covers is drawn as a
short stand-in (``#2``) that the report spells out in HTML text, which the browser renders with
its own fonts: no chart shows empty boxes and matplotlib warns of no missing glyph.
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

__all__ = ["BASE_FAMILY", "LabelFonts", "label_fonts"]

BASE_FAMILY = "DejaVu Sans"  # matplotlib's default font, shipped with it
_PLACEHOLDER_FAMILIES = frozenset({"Last Resort High-Efficiency", "LastResort"})  # boxes only
_MAX_FALLBACKS = 4  # a fallback list longer than this is slow to draw and rarely needed


@dataclass(frozen=True)
class LabelFonts:
    """The font families to draw labels with, and the labels drawn as stand-ins instead."""

    families: tuple[str, ...] = (BASE_FAMILY,)
    stand_ins: Mapping[str, str] = field(default_factory=dict)  # label -> "#2"

    def text(self, label: object) -> str:
        """What a chart draws for a label: the label itself, or its stand-in."""
        name = str(label)
        return self.stand_ins.get(name, name)

    def key(self) -> list[tuple[str, str]]:
        """The (stand-in, label) pairs the report lists under its charts."""
        return [(stand_in, label) for label, stand_in in self.stand_ins.items()]


def _needed(text: str) -> frozenset[int]:
    """The code points of ``text`` that need a glyph (not spaces, control or format marks)."""
    return frozenset(
        ord(c) for c in text if not c.isspace() and not unicodedata.category(c).startswith("C")
    )


@functools.cache
def _installed() -> tuple[tuple[str, frozenset[int]], ...]:
    """(family, code points it has glyphs for) of each font matplotlib knows, read once."""
    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font

    fonts: dict[str, frozenset[int]] = {}
    for entry in font_manager.fontManager.ttflist:
        if entry.name in fonts or entry.name in _PLACEHOLDER_FAMILIES:
            continue
        index = getattr(entry, "index", 0)  # a face inside a .ttc collection
        try:
            font = FT2Font(entry.fname, face_index=index) if index else FT2Font(entry.fname)
            fonts[entry.name] = frozenset(font.get_charmap())
        except (OSError, RuntimeError, TypeError, ValueError):
            continue  # an unreadable font file covers nothing
    return tuple(fonts.items())


def label_fonts(labels: Iterable[object]) -> LabelFonts:
    """The families that draw ``labels`` (DejaVu Sans first) and stand-ins for the rest."""
    names = list(dict.fromkeys(str(label) for label in labels))
    needed = {name: _needed(name) for name in names}
    wanted = frozenset().union(*needed.values())
    if not wanted:
        return LabelFonts()
    installed = dict(_installed())
    covered = set(installed.get(BASE_FAMILY, frozenset()))
    missing = wanted - covered
    chosen: list[str] = []
    while missing and len(chosen) < _MAX_FALLBACKS:
        candidates = [
            (len(missing & glyphs), family)
            for family, glyphs in installed.items()
            if family != BASE_FAMILY and family not in chosen
        ]
        found, family = min(candidates, key=lambda c: (-c[0], c[1]), default=(0, ""))
        if not found:  # the most glyphs first, ties by name: the same choice on every run
            break
        chosen.append(family)
        covered |= installed[family]
        missing -= installed[family]
    stand_ins = {
        name: f"#{position}"
        for position, name in enumerate(names, start=1)
        if not needed[name] <= covered
    }
    return LabelFonts(families=(BASE_FAMILY, *chosen), stand_ins=stand_ins)
