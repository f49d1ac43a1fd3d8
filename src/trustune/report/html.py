"""Render a run's manifest and metrics into one self-contained HTML page, and write it atomically.

The page's frame (header, summary, data, training, environment, files) is the same for every
run; what depends on the task or on other records comes from the section registry
(:mod:`trustune.report.sections`), chosen by the run's ``task``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from markupsafe import Markup

from trustune.artifact import atomic_write_text
from trustune.errors import ArtifactError
from trustune.evaluate.learning import check_learning
from trustune.manifest import Manifest, TrainingRecord
from trustune.report import plots
from trustune.report.fonts import label_fonts
from trustune.report.hyperparameters import hyperparameter_rows
from trustune.report.model_card import run_name
from trustune.report.sections import SectionInput, Slot, build_sections
from trustune.report.templating import created, environment
from trustune.values import mapping as as_mapping

__all__ = ["REPORT_FILENAME", "render_report", "write_report"]

REPORT_FILENAME = "report.html"


def _anchor(title: str, taken: set[str]) -> str:
    """A unique, URL-safe id for a section title."""
    base = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or "section"
    anchor, suffix = base, 2
    while anchor in taken:
        anchor, suffix = f"{base}-{suffix}", suffix + 1
    taken.add(anchor)
    return anchor


def _drawn_labels(labels: Sequence[str], results: Sequence[Mapping[str, Any]]) -> list[str]:
    """Every label a chart may draw: the run's, then any other an evaluation names."""
    names = list(labels)
    for result in results:
        names += [str(name) for name in as_mapping(result.get("per_class"))]
        matrix_labels = as_mapping(result.get("confusion_matrix")).get("labels")
        if isinstance(matrix_labels, list):
            names += [str(name) for name in matrix_labels]
        for curves in as_mapping(result.get("curves")).values():
            names += [str(name) for name in as_mapping(curves)]
    return names


def _result_view(anchor: str, title: str, given: SectionInput) -> dict[str, Any]:
    """What the template shows for one EvalResult: its card figures and its sections."""
    return {
        "id": anchor,
        "title": title,
        "result": given.result,
        "card": build_sections(Slot.CARD, given),
        "blocks": build_sections(Slot.RESULT, given),
    }


def _context(
    manifest: Manifest,
    metrics: Mapping[str, Any],
    run_name: str,
    run_dir: Path | None,
    extra_sections: Sequence[tuple[str, str]],
) -> dict[str, Any]:
    """The template's variables, built from the manifest and metrics."""
    labels = [str(label) for label in manifest.labels or ()]
    data, training, env = manifest.data, manifest.training, manifest.environment

    taken = {"summary", "data", "training", "environment", "files"}
    validation = as_mapping(metrics.get("validation"))
    evaluations = [
        (name, as_mapping(result))
        for name, result in as_mapping(metrics.get("evaluations")).items()
    ]
    train_counts = data.train.class_counts if data.train is not None else {}
    fonts = label_fonts(
        [
            *_drawn_labels(labels, [validation, *(result for _, result in evaluations)]),
            *train_counts,
        ]
    )
    run = SectionInput(manifest, metrics, run_dir=run_dir, labels=labels, fonts=fonts)
    named = [("Validation", validation)] if validation else []
    named += [(f"Evaluation: {name}", result) for name, result in evaluations]
    results = [
        _result_view(_anchor(title, taken), title, dataclasses.replace(run, result=result))
        for title, result in named
    ]
    extras = [
        (_anchor(title, taken), title, body)
        for title, body in [*build_sections(Slot.RUN, run), *extra_sections]
    ]

    nav = [("summary", "Summary"), ("data", "Data"), ("training", "Training")]
    nav += [(view["id"], view["title"]) for view in results]
    nav += [("environment", "Environment"), ("files", "Files")]
    nav += [(anchor, title) for anchor, title, _ in extras]
    return {
        "manifest": manifest,
        "run_name": run_name,
        "task": manifest.task,
        "created": created(manifest.created),
        "version": manifest.trustune_version,
        "model": manifest.model,
        "header": build_sections(Slot.HEADER, run),
        "splits": data.splits(),
        "data_blocks": build_sections(Slot.DATA, run),
        "training": training if training != TrainingRecord() else None,
        "hyperparameters": hyperparameter_rows(manifest),
        "learning": check_learning(manifest, validation) if validation else None,
        "training_chart": plots.training_curves(list(training.history)),
        "results": results,
        "environment": env,
        "packages": sorted(env.packages.items()),
        "files": sorted(manifest.files.items()),
        "extra_sections": extras,
        "nav": nav,
    }


def render_report(
    manifest: Manifest,
    metrics: Mapping[str, Any],
    *,
    run_name: str = "trustune run",
    run_dir: Path | None = None,
    extra_sections: Sequence[tuple[str, str]] | None = None,
) -> str:
    """The report as one HTML string that needs nothing else to open.

    The registered sections of the run's task come in by themselves (those that read run files,
    such as explanations, only with ``run_dir``). ``extra_sections`` are ``(title, body)`` pairs
    appended at the end; a body that is a ``markupsafe.Markup`` is inserted as HTML, a plain
    ``str`` is escaped.
    """
    extras = [(title, Markup.escape(body)) for title, body in extra_sections or ()]
    context = _context(manifest, metrics, run_name, run_dir, extras)
    return environment().get_template("report.html.j2").render(context)


def write_report(
    run_dir: Path,
    manifest: Manifest,
    metrics: Mapping[str, Any],
    *,
    extra_sections: Sequence[tuple[str, str]] | None = None,
) -> Path:
    """Write ``run_dir/report.html`` atomically (temp file in the same folder, then rename)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ArtifactError(
            f"cannot write the report: run folder {run_dir} does not exist "
            "(pass the folder that holds trustune.json)"
        )
    html = render_report(
        manifest, metrics, run_name=run_name(run_dir), run_dir=run_dir,
        extra_sections=extra_sections,
    )  # fmt: skip
    target = run_dir / REPORT_FILENAME
    atomic_write_text(target, html, mode=0o644)  # a report is meant to be shared
    return target
