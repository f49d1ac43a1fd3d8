"""Extra report sections that come from files of the run (explanations, ...).

Each entry names a file in the run folder and the function that renders it as an HTML
fragment; the function is imported only when its file exists, so the report does not depend
on the packages that write those files.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from markupsafe import Markup

__all__ = ["RUN_SECTIONS", "forget_run_sections", "run_sections"]

# (title, file in the run folder, "module:function" taking the file's path, returning Markup)
RUN_SECTIONS: tuple[tuple[str, str, str], ...] = (
    ("Explanations", "explanations.json", "trustune.explain.store:report_section"),
)


def run_sections(run_dir: Path) -> list[tuple[str, Markup]]:
    """The ``(title, html)`` sections whose files exist in ``run_dir``, in the order above."""
    sections = []
    for title, filename, target in RUN_SECTIONS:
        path = Path(run_dir) / filename
        if not path.is_file():
            continue
        module_name, _, function = target.partition(":")
        render = getattr(importlib.import_module(module_name), function)
        sections.append((title, Markup(render(path))))
    return sections


def forget_run_sections(run_dir: Path) -> None:
    """Delete the section files of a run whose model was just replaced (they describe the old one)."""
    for _, filename, _ in RUN_SECTIONS:
        (Path(run_dir) / filename).unlink(missing_ok=True)
