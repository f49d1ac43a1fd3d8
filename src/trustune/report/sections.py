"""The registry of report sections: every part of report.html that depends on the task or on
what else was recorded about the run (explanations, privacy) is an entry here.

A section fills one slot of the page (:class:`Slot`): the header, a summary card, the Data
section, each result's section (validation and every evaluation), or a section of its own
after the run's fixed ones. Entries name the tasks they belong to (``tasks``; none: every
task), so the run's ``task`` chooses its sections here and the template only loops over them.

The packages that contribute sections register them in their own modules; those modules are
listed in :data:`ENTRY_MODULES` and imported on first use, as entry points would be, so every
writer of the report (training, evaluate, explain, audit, ``trustune report``) gets the same
sections whatever it imported before, and the report depends on none of them at import time.
"""

from __future__ import annotations

import enum
import functools
import importlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from markupsafe import Markup

from trustune.errors import ConfigError
from trustune.manifest import DEFAULT_TASK, Manifest
from trustune.report.fonts import LabelFonts

__all__ = [
    "DEFAULT_TASK",
    "ENTRY_MODULES",
    "ReportSection",
    "SectionInput",
    "Slot",
    "build_sections",
    "forget_run_sections",
    "known_sections",
    "register_section",
    "sections_for",
    "task_of",
]

# The modules that register sections (and model-card entries) when imported.
ENTRY_MODULES: tuple[str, ...] = (
    "trustune.report.classification",
    "trustune.report.regression",
    "trustune.report.speed",
    "trustune.privacy.report",
    "trustune.tuning.report",
    "trustune.compress.report",
)


class Slot(enum.StrEnum):
    """Where a section goes on the page."""

    HEADER = "header"  # under the run's facts at the top (the labels, the target)
    CARD = "card"  # figures in each result's summary card
    DATA = "data"  # in the Data section, after the splits table
    RESULT = "result"  # in each result's section (validation, every evaluation)
    RUN = "run"  # a section of its own, after Environment and Files


@dataclass(frozen=True)
class SectionInput:
    """What a section is built from."""

    manifest: Manifest
    metrics: Mapping[str, Any]
    run_dir: Path | None = None  # None: rendered from records alone (no run files to read)
    result: Mapping[str, Any] = field(default_factory=dict)  # CARD and RESULT: its EvalResult
    labels: Sequence[str] = ()  # the run's labels (classification)
    fonts: LabelFonts = field(default_factory=LabelFonts)  # to draw those labels in plots


# Builds the HTML of a section; None leaves it out (nothing to show for this run).
SectionBuilder = Callable[[SectionInput], "Markup | str | None"]


@dataclass(frozen=True)
class ReportSection:
    """One entry of the registry."""

    name: str
    title: str  # the heading of a RUN section (other slots' fragments carry their own)
    order: int  # position within its slot, lowest first
    builder: SectionBuilder
    slot: Slot = Slot.RUN
    tasks: frozenset[str] | None = None  # None: every task
    files: tuple[str, ...] = ()  # run files it renders: removed when the model is replaced

    def applies_to(self, task: str) -> bool:
        return self.tasks is None or task in self.tasks


_SECTIONS: dict[str, ReportSection] = {}


def register_section(
    name: str, *, title: str, order: int, builder: SectionBuilder, slot: Slot = Slot.RUN,
    tasks: Iterable[str] | None = None, files: Sequence[str] = (),
) -> ReportSection:  # fmt: skip
    """Add a section; a name taken twice is an error that lists the known ones."""
    if name in _SECTIONS:
        raise ConfigError(
            f"report section {name!r} is registered twice; the known sections are "
            f"{sorted(_SECTIONS)}"
        )
    entry = ReportSection(
        name=name, title=title, order=order, builder=builder, slot=Slot(slot),
        tasks=None if tasks is None else frozenset(tasks), files=tuple(files),
    )  # fmt: skip
    _SECTIONS[name] = entry
    return entry


@functools.cache
def load_entries() -> None:
    """Import the modules of :data:`ENTRY_MODULES` once (they register their sections)."""
    for module in ENTRY_MODULES:
        importlib.import_module(module)


def known_sections() -> list[str]:
    """The names of every registered section, sorted."""
    load_entries()
    return sorted(_SECTIONS)


def task_of(manifest: Manifest) -> str:
    """The run's task name (the default for a manifest that names none)."""
    return manifest.task or DEFAULT_TASK


def sections_for(task: str, slot: Slot) -> list[ReportSection]:
    """The sections of ``slot`` for a run of ``task``, in order."""
    load_entries()
    found = [s for s in _SECTIONS.values() if s.slot is slot and s.applies_to(task)]
    return sorted(found, key=lambda s: (s.order, s.name))


def build_sections(slot: Slot, given: SectionInput) -> list[tuple[str, Markup]]:
    """The ``(title, html)`` of each section of ``slot`` that has something to show."""
    built = []
    for section in sections_for(task_of(given.manifest), slot):
        body = section.builder(given)
        if body is not None:
            built.append((section.title, body if isinstance(body, Markup) else Markup.escape(body)))
    return built


def forget_run_sections(run_dir: Path) -> None:
    """Delete the section files of a run whose model was just replaced (they describe the old one)."""
    load_entries()
    for section in _SECTIONS.values():
        for filename in section.files:
            (Path(run_dir) / filename).unlink(missing_ok=True)


# -- the sections of other packages that need no import to register -------------------------

_EXPLANATIONS = "explanations.json"


def _explanations(given: SectionInput) -> Markup | None:
    """``explanations.json``, rendered by trustune.explain, imported only when the file exists
    (the explain package loads Captum and torch)."""
    if given.run_dir is None or not (given.run_dir / _EXPLANATIONS).is_file():
        return None
    store = importlib.import_module("trustune.explain.store")
    return Markup(store.report_section(given.run_dir / _EXPLANATIONS))


register_section(
    "explanations", title="Explanations", order=100, builder=_explanations,
    files=(_EXPLANATIONS,),
)  # fmt: skip
