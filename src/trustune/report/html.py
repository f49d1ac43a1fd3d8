"""Render a run's manifest and metrics into one self-contained HTML page, and write it atomically."""

from __future__ import annotations

import functools
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2

from trustune.errors import ArtifactError
from trustune.evaluate.learning import check_learning
from trustune.report import plots
from trustune.report.fonts import LabelFonts, label_fonts
from trustune.report.hyperparameters import hyperparameter_rows
from trustune.report.model_card import run_name
from trustune.values import finite
from trustune.values import mapping as as_mapping

__all__ = ["REPORT_FILENAME", "render_report", "write_report"]

REPORT_FILENAME = "report.html"

_MISSING = "—"
_SHA_PREFIX = 12
_METRIC_ROWS = (
    ("Accuracy", "accuracy"),
    ("Precision (macro)", "precision_macro"),
    ("Recall (macro)", "recall_macro"),
    ("F1 (macro)", "f1_macro"),
    ("Precision (weighted)", "precision_weighted"),
    ("Recall (weighted)", "recall_weighted"),
    ("F1 (weighted)", "f1_weighted"),
    ("ROC-AUC", "roc_auc"),
    ("PR-AUC", "pr_auc"),
    ("Expected calibration error", "ece"),
)


def _metric(value: Any, digits: int = 3) -> str:
    """A score in [0, 1] with a fixed number of decimals."""
    number = finite(value)
    return _MISSING if number is None else f"{number:.{digits}f}"


def _number(value: Any, digits: int = 1) -> str:
    """A measurement with thousands separators."""
    number = finite(value)
    return _MISSING if number is None else f"{number:,.{digits}f}"


def _integer(value: Any) -> str:
    """A count with thousands separators."""
    number = finite(value)
    return _MISSING if number is None else f"{round(number):,}"


def _params(value: Any) -> str:
    """A parameter count, short and exact: '22.7 M (22,713,216)'."""
    number = finite(value)
    if number is None:
        return _MISSING
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if number >= scale:
            return f"{number / scale:.1f} {suffix} ({round(number):,})"
    return f"{round(number):,}"


def _duration(value: Any) -> str:
    """Seconds as '41.2 s', '12 min 5 s' or '2 h 3 min'."""
    seconds = finite(value)
    if seconds is None:
        return _MISSING
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
        return _MISSING
    return str(value)


def _sha(value: Any) -> str:
    """The first characters of a hex digest; the full digest goes in a title attribute."""
    return value[:_SHA_PREFIX] if isinstance(value, str) and value else _MISSING


def _yesno(value: Any) -> str:
    """A boolean as 'yes' / 'no'."""
    return ("yes" if value else "no") if isinstance(value, bool) else _MISSING


def _created(value: Any) -> str:
    """An ISO timestamp shown in UTC to the minute; anything unparsable as given."""
    if not isinstance(value, str):
        return _MISSING
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    if moment.tzinfo is None:
        return moment.strftime("%Y-%m-%d %H:%M")
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


@functools.cache
def _environment() -> jinja2.Environment:
    """The jinja environment: autoescaping, lenient about missing keys (they render as a dash)."""
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("trustune.report", "templates"),
        autoescape=True,
        undefined=jinja2.ChainableUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters.update(
        metric=_metric,
        number=_number,
        integer=_integer,
        params=_params,
        duration=_duration,
        text=_text,
        sha=_sha,
        yesno=_yesno,
    )
    return environment


def _anchor(title: str, taken: set[str]) -> str:
    """A unique, URL-safe id for a section title."""
    base = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or "section"
    anchor, suffix = base, 2
    while anchor in taken:
        anchor, suffix = f"{base}-{suffix}", suffix + 1
    taken.add(anchor)
    return anchor


def _in_label_order(keys: Sequence[str], labels: Sequence[str]) -> list[str]:
    """Keys ordered as the run's labels, unknown keys after them."""
    ordered = [label for label in labels if label in keys]
    return ordered + [key for key in keys if key not in ordered]


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


def _result_view(
    anchor: str, title: str, result: Mapping[str, Any], labels: Sequence[str], fonts: LabelFonts
) -> dict[str, Any]:
    """What the template shows for one EvalResult, its plots drawn."""
    per_class = as_mapping(result.get("per_class"))
    speed = as_mapping(result.get("speed"))
    return {
        "id": anchor,
        "title": title,
        "result": result,
        "per_class": [
            (label, as_mapping(per_class[label]))
            for label in _in_label_order(list(per_class), labels)
        ],
        "confusion": plots.confusion_matrix(result.get("confusion_matrix"), fonts=fonts),
        "roc": plots.roc_curves(result.get("curves"), fonts=fonts),
        "pr": plots.pr_curves(result.get("curves"), fonts=fonts),
        "reliability": plots.reliability_diagram(result.get("reliability")),
        "speed": speed or None,
    }


def _context(
    manifest: Mapping[str, Any],
    metrics: Mapping[str, Any],
    run_name: str,
    extra_sections: Sequence[tuple[str, str]],
) -> dict[str, Any]:
    """The template's variables, built from the manifest and metrics."""
    raw_labels = manifest.get("labels")
    labels = [str(label) for label in raw_labels] if isinstance(raw_labels, list) else []
    data = as_mapping(manifest.get("data"))
    splits = [(name, as_mapping(split)) for name, split in data.items() if as_mapping(split)]
    class_keys = [key for _, split in splits for key in as_mapping(split.get("class_counts"))]
    class_rows = [
        (label, [as_mapping(split.get("class_counts")).get(label) for _, split in splits])
        for label in _in_label_order(list(dict.fromkeys(class_keys)), labels)
    ]
    training = as_mapping(manifest.get("training"))
    environment = as_mapping(manifest.get("environment"))

    taken = {"summary", "data", "training", "environment", "files"}
    validation = as_mapping(metrics.get("validation"))
    evaluations = [
        (name, as_mapping(result))
        for name, result in as_mapping(metrics.get("evaluations")).items()
    ]
    train_counts = as_mapping(as_mapping(data.get("train")).get("class_counts"))
    fonts = label_fonts(
        [
            *_drawn_labels(labels, [validation, *(result for _, result in evaluations)]),
            *train_counts,
        ]
    )
    results = []
    if validation:
        results.append(
            _result_view(_anchor("Validation", taken), "Validation", validation, labels, fonts)
        )
    for name, result in evaluations:
        title = f"Evaluation: {name}"
        results.append(_result_view(_anchor(title, taken), title, result, labels, fonts))
    extras = [(_anchor(title, taken), title, body) for title, body in extra_sections]

    nav = [("summary", "Summary"), ("data", "Data"), ("training", "Training")]
    nav += [(view["id"], view["title"]) for view in results]
    nav += [("environment", "Environment"), ("files", "Files")]
    nav += [(anchor, title) for anchor, title, _ in extras]
    return {
        "manifest": manifest,
        "run_name": run_name,
        "task": manifest.get("task"),
        "created": _created(manifest.get("created")),
        "version": manifest.get("trustune_version"),
        "model": as_mapping(manifest.get("model")),
        "labels": labels,
        "splits": splits,
        "class_rows": class_rows,
        "class_chart": plots.class_distribution(train_counts, labels, fonts=fonts),
        "label_key": fonts.key(),
        "training": training,
        "hyperparameters": hyperparameter_rows(manifest),
        "learning": check_learning(manifest, validation) if validation else None,
        "training_chart": plots.training_curves(training.get("history")),
        "results": results,
        "metric_rows": _METRIC_ROWS,
        "environment": environment,
        "packages": sorted(as_mapping(environment.get("packages")).items()),
        "files": sorted(as_mapping(manifest.get("files")).items()),
        "extra_sections": extras,
        "nav": nav,
    }


def render_report(
    manifest: Mapping[str, Any],
    metrics: Mapping[str, Any],
    *,
    run_name: str = "trustune run",
    extra_sections: Sequence[tuple[str, str]] | None = None,
) -> str:
    """The report as one HTML string that needs nothing else to open.

    ``extra_sections`` are ``(title, body)`` pairs appended at the end; a body that is a
    ``markupsafe.Markup`` is inserted as HTML, a plain ``str`` is escaped.
    """
    context = _context(manifest, metrics, run_name, extra_sections or ())
    return _environment().get_template("report.html.j2").render(context)


def write_report(
    run_dir: Path,
    manifest: Mapping[str, Any],
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
        manifest, metrics, run_name=run_name(run_dir), extra_sections=extra_sections
    )
    target = run_dir / REPORT_FILENAME
    descriptor, temp_name = tempfile.mkstemp(dir=run_dir, prefix=".report-", suffix=".html.tmp")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(html)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp_name, 0o644)  # mkstemp creates 0600; a report is meant to be shared
        os.replace(temp_name, target)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    return target
