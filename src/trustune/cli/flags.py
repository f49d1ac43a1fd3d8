"""Flags generated from the fields of a settings dataclass, and the settings read back from them.

A field is a flag when its metadata has help (``trustune.config.flag_metadata``); its type and
default say how argparse reads it, so a new field is a new flag with no CLI code:

- a bool that defaults to False is a switch (``--log-texts``); one that defaults to True and
  whose flag starts with ``--no-`` switches it off (``--no-auth``); with ``negatable`` every
  bool gets both spellings (``--group-by-length`` / ``--no-group-by-length``);
- an enum offers its values (``--precision auto|fp32|bf16``);
- a number reads as the default's type; an optional one (default None) as its ``type`` metadata;
- ``names`` metadata (a function returning the allowed names, e.g. a registry's) is listed in
  the help when the parser is built, so names registered later appear too.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import textwrap
from collections.abc import Callable
from typing import Any

from trustune.config import settings_flags

__all__ = [
    "ExamplesFormatter",
    "HelpFormatter",
    "add_settings_flags",
    "flag_arguments",
    "settings_values",
]


def flag_arguments(
    spec: dataclasses.Field[Any], *, flag: str, dest: str | None = None, negatable: bool = False,
    suppress_default: bool = False,
) -> dict[str, Any]:  # fmt: skip
    """The ``add_argument`` keywords of one field's flag.

    ``suppress_default``: a flag not given leaves no attribute (so that a config file's value
    is kept, as ``trustune train`` does), and the help shows the field's default.
    """
    default = spec.default if spec.default is not dataclasses.MISSING else None
    meta = spec.metadata
    kwargs: dict[str, Any] = {"dest": dest or spec.name}
    help_text = str(meta["help"])
    names: Callable[[], list[str]] | None = meta.get("names")
    if names is not None:
        help_text += f"; one of: {', '.join(names())}"
    if isinstance(default, bool) and not negatable:
        off = flag.startswith("--no-")
        if default is not off:  # --no-auth turns a True off; a plain switch turns a False on
            raise ValueError(f"{flag}: a bool flag that defaults to {default} needs negatable=True")
        kwargs["action"] = "store_false" if off else "store_true"
    else:
        shown = meta.get("shown", default.value if isinstance(default, enum.Enum) else default)
        if shown is not None:
            help_text += f" (default: {f'{shown:g}' if isinstance(shown, float) else shown})"
        if isinstance(default, bool):
            kwargs["action"] = argparse.BooleanOptionalAction
        elif isinstance(default, enum.Enum):
            choices = getattr(type(default), "choices", None)  # other names (--task chat)
            kwargs["choices"] = choices() if choices else [m.value for m in type(default)]
        elif isinstance(default, int | float):
            kwargs["type"] = type(default)
            kwargs["metavar"] = meta.get("metavar", "N" if isinstance(default, int) else "X")
        elif "type" in meta:  # optional numbers (default None), e.g. --dp-epsilon, --threads
            kwargs["type"] = meta["type"]
            kwargs["metavar"] = meta.get("metavar", "N" if meta["type"] is int else "X")
        else:
            kwargs["metavar"] = meta.get("metavar", spec.name.split("_")[-1].upper())
    kwargs["help"] = help_text.replace("%", "%%")  # argparse formats help with %
    kwargs["default"] = argparse.SUPPRESS if suppress_default else default
    return kwargs


class HelpFormatter(argparse.HelpFormatter):
    """argparse's, but a line never breaks inside a hyphenated name (integrated-gradients)."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)


class ExamplesFormatter(argparse.HelpFormatter):
    """Fills paragraphs as argparse does, but keeps the lines of a text that has line breaks
    (an epilog of examples)."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" not in text:
            return super()._fill_text(text, width, indent)
        return "".join(indent + line for line in text.splitlines(keepends=True))


def add_settings_flags(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup, settings_type: type
) -> None:
    """One flag per flag field of ``settings_type``; the attribute is the field's name."""
    for flag, spec in settings_flags(settings_type):
        parser.add_argument(flag, **flag_arguments(spec, flag=flag))


def settings_values(args: argparse.Namespace, settings_type: type) -> dict[str, Any]:
    """The values of ``settings_type``'s flag fields from parsed arguments (keyword arguments
    of its constructor: the fields that are not flags keep their defaults)."""
    return {spec.name: getattr(args, spec.name) for _, spec in settings_flags(settings_type)}
