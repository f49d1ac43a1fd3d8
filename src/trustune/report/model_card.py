"""The model card: ``model/README.md`` in the Hugging Face format, from the manifest and metrics.

YAML front matter (``library_name``, ``pipeline_tag``, ``tags``, ``base_model``, ``metrics``,
``model-index``) for tools that read model metadata, then sections for people: what the model
is, its intended use and limits, the training data's fingerprint, hyperparameters, metrics, the
privacy guarantee and membership audit, and the SHA-256 of each model file. It is rewritten with
the other records (training, evaluate, explain, audit) and hashed with the model files. An
encrypted run keeps the card sealed at encryption time: a plaintext file in its model folder
would be an unsealed payload.

What the card says of the task (its metadata, scores and template) is a :class:`CardTask`
that the task's report module registers (:func:`register_card`); the run's ``task`` picks it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

import jinja2
import yaml

from trustune.artifact import atomic_write_text, hash_files
from trustune.errors import ConfigError
from trustune.manifest import Manifest, ModelRecord
from trustune.report.hyperparameters import hyperparameter_rows
from trustune.report.sections import load_entries, task_of
from trustune.values import finite
from trustune.values import mapping as as_mapping

__all__ = [
    "CARD_FILENAME",
    "CardScore",
    "CardTask",
    "md_code",
    "md_count",
    "md_score",
    "md_text",
    "md_unit",
    "register_card",
    "render_model_card",
    "run_name",
    "write_model_card",
]

CARD_FILENAME = "README.md"
MODEL_FOLDER = "model"
# built-in short names and the hub ids of the checkpoints they ship
_BUILTIN_HUB_IDS = {"minilm": "sentence-transformers/all-MiniLM-L6-v2"}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_STAGING = re.compile(r"\.(.+)\.tmp-\d+-\w+")  # artifact.staging_dir: .NAME.tmp-PID-XXXX
_MISSING = "—"


# -- values made safe for Markdown --------------------------------------------------------------


def md_score(value: Any, digits: int = 3) -> str:
    """A score with fixed decimals, a dash when missing."""
    number = finite(value)
    return _MISSING if number is None else f"{number:.{digits}f}"


def md_unit(value: Any) -> str:
    """A value in the targets' unit, four significant digits, a dash when missing."""
    number = finite(value)
    return _MISSING if number is None else f"{number:.4g}"


def md_count(value: Any) -> str:
    """A count with thousands separators, a dash when missing."""
    number = finite(value)
    return _MISSING if number is None else f"{round(number):,}"


def _one_line(value: Any) -> str:
    """The value as text on one line, a dash when missing."""
    shown = _MISSING if value is None or value == "" else str(value)
    return re.sub(r"\s*[\r\n]+\s*", " ", shown)


def md_text(value: Any) -> str:
    """Prose or a table cell: HTML and Markdown marks escaped, so it shows as written."""
    return re.sub(r"([\\`*_\[\]|#<>&])", r"\\\1", _one_line(value))


def md_code(value: Any) -> str:
    """The inside of a `code span` in a table: no backtick to end it, no pipe to split the row."""
    return _one_line(value).replace("`", "'").replace("|", "\\|")


def _file_name(path: Any) -> str:
    """Only the name of a data file: the card may travel, the folders it came from need not."""
    return PurePath(str(path)).name if path else _MISSING


# -- the registry of what each task's card says -------------------------------------------------


@dataclass(frozen=True)
class CardScore:
    """One figure of the Metrics table, and of the model-index when it has a ``kind``."""

    key: str  # the EvalResult key
    heading: str  # the Metrics table's column
    kind: str | None = None  # model-index metric type (the Hugging Face metric id)
    name: str = ""  # model-index metric name
    config: str | None = None  # model-index metric config ("macro")
    shown: Callable[[Any], str] = md_score  # how the table writes it


# The task's own template variables, from the manifest.
CardContext = Callable[[Manifest], dict[str, Any]]


def _no_context(manifest: Manifest) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class CardTask:
    """What the model card says of one task."""

    template: str  # the body, extending model_card.md.j2
    pipeline_tag: str | None  # the transformers pipeline that runs the folder
    tags: tuple[str, ...]
    index_task: tuple[str, str]  # model-index task: (type, name)
    scores: tuple[CardScore, ...]
    context: CardContext = _no_context


_CARDS: dict[str, CardTask] = {}


def register_card(task: str, card: CardTask) -> None:
    """Say what the card of ``task`` runs says; a task registered twice is an error."""
    if task in _CARDS:
        raise ConfigError(
            f"a model card for task {task!r} is registered twice; the known ones are "
            f"{sorted(_CARDS)}"
        )
    _CARDS[task] = card


def _card_of(task: str) -> CardTask:
    """The registered card of a task; a task this release does not know gets a plain card."""
    load_entries()
    found = _CARDS.get(task)
    if found is not None:
        return found
    return CardTask(
        template="model_card.md.j2", pipeline_tag=None, tags=(task,),
        index_task=(task, task), scores=(),
    )  # fmt: skip


def base_model(model: ModelRecord) -> str | None:
    """The hub id the run was fine-tuned from, when it has one (a local folder has none)."""
    source = model.source or ""
    if source in _BUILTIN_HUB_IDS:
        return _BUILTIN_HUB_IDS[source]
    if source and source == model.resolved and _HUB_ID.match(source):
        return source
    return None


def _results(metrics: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """(name, result) of validation then each recorded evaluation."""
    results = []
    if as_mapping(metrics.get("validation")):
        results.append(("validation", as_mapping(metrics["validation"])))
    for name, result in as_mapping(metrics.get("evaluations")).items():
        results.append((str(name), as_mapping(result)))
    return results


def _front_matter(
    manifest: Manifest, results: Sequence[tuple[str, Mapping[str, Any]]], name: str,
    card: CardTask,
) -> str:  # fmt: skip
    """The YAML metadata block, model-index included when a score was measured."""
    tags = ["trustune", *card.tags]
    if manifest.privacy is not None and manifest.privacy.dp:
        tags.append("differential-privacy")
    meta: dict[str, Any] = {"library_name": "transformers"}
    if card.pipeline_tag:
        meta["pipeline_tag"] = card.pipeline_tag
    meta["tags"] = tags
    base = base_model(manifest.model)
    if base:
        meta["base_model"] = base
    entries: list[dict[str, Any]] = []
    for result_name, result in results:
        scores: list[dict[str, Any]] = []
        for wanted in card.scores:
            value = finite(result.get(wanted.key))
            if value is not None and wanted.kind:
                found = {"type": wanted.kind, "value": round(value, 4), "name": wanted.name}
                scores.append({**found, "config": wanted.config} if wanted.config else found)
        if scores:
            data = as_mapping(result.get("data"))
            dataset = _file_name(data.get("path")) if data.get("path") else result_name
            kind, title = card.index_task
            entries.append(
                {
                    "task": {"type": kind, "name": title},
                    "dataset": {"name": f"{result_name} ({dataset})", "type": dataset},
                    "metrics": scores,
                }
            )
    if entries:
        meta["metrics"] = sorted({score["type"] for e in entries for score in e["metrics"]})
        meta["model-index"] = [{"name": name, "results": entries}]
    return yaml.safe_dump(meta, sort_keys=False, allow_unicode=True, default_flow_style=False)


def _privacy(manifest: Manifest) -> dict[str, Any] | None:
    """What the card says about privacy: the DP guarantee, redaction, the membership audit."""
    privacy = manifest.privacy
    if privacy is None:
        return None
    out: dict[str, Any] = {"dp": privacy.dp}
    if privacy.dp:
        delta = finite(privacy.delta)
        out.update(
            epsilon=md_score(privacy.epsilon),
            delta=_MISSING if delta is None else f"{delta:.3g}",
            accountant=md_text(privacy.accountant),
            noise=md_score(privacy.noise_multiplier, 4),
            clipping=md_text(privacy.max_grad_norm),
            steps=md_count(privacy.steps),
        )
    out["redaction"] = [
        (
            md_text(split),
            md_count(sum(finite(n) or 0 for n in as_mapping(as_mapping(s).get("counts")).values())),
        )
        for split, s in (privacy.redaction or {}).items()
    ]
    audit = as_mapping(privacy.audit)
    if audit:
        interval = audit.get("auc_ci")
        low, high = interval if isinstance(interval, list) and len(interval) == 2 else (None, None)
        out["audit"] = {
            "auc": md_score(audit.get("auc")),
            "low": md_score(low),
            "high": md_score(high),
            "attack": md_text(audit.get("strongest_attack")),
            "tpr_1": md_score(audit.get("tpr_at_1pct_fpr")),
            "tpr_01": md_score(audit.get("tpr_at_0.1pct_fpr")),
            "members": md_count(as_mapping(audit.get("members")).get("used")),
            "non_members": md_count(as_mapping(audit.get("non_members")).get("used")),
        }
    return out


@functools.cache
def _environment() -> jinja2.Environment:
    """The card templates' environment (Markdown: values are made safe in Python, not by
    autoescape)."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("trustune.report", "templates"),
        autoescape=False,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def _inputs(manifest: Manifest) -> str:
    """What the model reads: 'a text (column `text`)', 'a pair of texts (columns `a` and `b`)'."""
    first = md_code(manifest.text_column)
    pair = manifest.text_pair_column
    if pair:
        return f"a pair of texts (columns `{first}` and `{md_code(pair)}`)"
    return f"a text (column `{first}`)"


def _context(
    manifest: Manifest, metrics: Mapping[str, Any], run_name: str,
    model_files: Mapping[str, str], card: CardTask,
) -> dict[str, Any]:  # fmt: skip
    """The template's variables, each made safe for where the template puts it."""
    model, training, train = manifest.model, manifest.training, manifest.data.train
    return {
        "name": md_text(run_name),
        "task": md_code(task_of(manifest)),
        "architecture": md_text(model.architecture),
        "parameters": md_count(model.parameters),
        "base": base_model(model),
        "source": md_code(_file_name(model.source)),
        "inputs": _inputs(manifest),
        "pairs": manifest.pairs,
        "text_column": md_code(manifest.text_column),
        "max_length": md_count(manifest.setting("data", "max_length")),
        "train_rows": md_count(train.rows if train is not None else None),
        "splits": [
            {
                "name": md_text(name),
                "file": md_code(_file_name(part.path)),
                "rows": md_count(part.rows),
                "truncated": md_count(part.truncated),
                "sha256": md_code(part.sha256),
            }
            for name, part in manifest.data.splits()
        ],
        "hyperparameters": [
            (md_code(key), md_code(value)) for key, value, _ in hyperparameter_rows(manifest)
        ],
        "training": {
            "steps": md_count(training.steps),
            "epochs": md_count(training.epochs_completed),
            "precision": md_text(training.precision),
            "device": md_text(training.device),
            "selection": md_text(training.selection_metric),
            "best": md_score(training.best_metric),
        },
        "score_headings": [wanted.heading for wanted in card.scores],
        "results": [
            {
                "name": md_text(name),
                "file": md_code(_file_name(as_mapping(result.get("data")).get("path"))),
                "rows": md_count(as_mapping(result.get("data")).get("rows")),
                "scores": [wanted.shown(result.get(wanted.key)) for wanted in card.scores],
            }
            for name, result in _results(metrics)
        ],
        "privacy": _privacy(manifest),
        "files": sorted((md_code(name), md_code(digest)) for name, digest in model_files.items()),
        "version": md_text(manifest.trustune_version),
        "created": md_text(manifest.created),
        **card.context(manifest),
    }


def render_model_card(
    manifest: Manifest,
    metrics: Mapping[str, Any],
    *,
    run_name: str,
    model_files: Mapping[str, str] | None = None,
) -> str:
    """The card as Markdown with YAML front matter; ``model_files`` maps file name to SHA-256."""
    card = _card_of(task_of(manifest))
    front = _front_matter(manifest, _results(metrics), run_name, card)
    template = _environment().get_template(card.template)
    body = template.render(_context(manifest, metrics, run_name, model_files or {}, card))
    return f"---\n{front}---\n\n{body}"


def run_name(run_dir: Path) -> str:
    """The run's name: its folder's, also while it is built in a staging folder beside it."""
    name = Path(run_dir).resolve().name
    staged = _STAGING.fullmatch(name)
    return staged.group(1) if staged else name


def write_model_card(run_dir: Path, manifest: Manifest, metrics: Mapping[str, Any]) -> Path | None:
    """Write ``model/README.md`` atomically; None (nothing written) without a plaintext model."""
    run_dir = Path(run_dir)
    folder = run_dir / MODEL_FOLDER
    if manifest.encrypted or not (folder / "config.json").is_file():
        return None
    card = folder / CARD_FILENAME
    prefix = f"{MODEL_FOLDER}/"
    model_files = {
        name[len(prefix) :]: digest
        for name, digest in hash_files(run_dir, folders=(MODEL_FOLDER,)).items()
        if name != prefix + CARD_FILENAME
    }
    text = render_model_card(manifest, metrics, run_name=run_name(run_dir), model_files=model_files)
    atomic_write_text(card, text)
    card.chmod(0o644)  # a card is meant to be read, like the report
    return card
