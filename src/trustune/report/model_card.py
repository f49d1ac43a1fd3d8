"""The model card: ``model/README.md`` in the Hugging Face format, from the manifest and metrics.

YAML front matter (``library_name``, ``pipeline_tag``, ``tags``, ``base_model``, ``metrics``,
``model-index``) for tools that read model metadata, then sections for people: what the model
is, its intended use and limits, the training data's fingerprint, hyperparameters, metrics, the
privacy guarantee and membership audit, and the SHA-256 of each model file. It is rewritten with
the other records (training, evaluate, explain, audit) and hashed with the model files. An
encrypted run keeps the card sealed at encryption time: a plaintext file in its model folder
would be an unsealed payload.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePath
from typing import Any

import jinja2
import yaml

from trustune.artifact import atomic_write_text, hash_files
from trustune.report.hyperparameters import hyperparameter_rows
from trustune.values import finite
from trustune.values import mapping as as_mapping

__all__ = ["CARD_FILENAME", "render_model_card", "write_model_card"]

CARD_FILENAME = "README.md"
MODEL_FOLDER = "model"
# built-in short names and the hub ids of the checkpoints they ship
_BUILTIN_HUB_IDS = {"minilm": "sentence-transformers/all-MiniLM-L6-v2"}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_STAGING = re.compile(r"\.(.+)\.tmp-\d+-\w+")  # artifact.staging_dir: .NAME.tmp-PID-XXXX
_SCORES = (  # (manifest key, model-index metric type, name, config)
    ("accuracy", "accuracy", "Accuracy", None),
    ("f1_macro", "f1", "F1 (macro)", "macro"),
    ("roc_auc", "roc_auc", "ROC-AUC", None),
)


def _score(value: Any, digits: int = 3) -> str:
    """A score with fixed decimals, a dash when missing."""
    number = finite(value)
    return "—" if number is None else f"{number:.{digits}f}"


def _one_line(value: Any) -> str:
    """The value as text on one line, a dash when missing."""
    text = "—" if value is None or value == "" else str(value)
    return re.sub(r"\s*[\r\n]+\s*", " ", text)


def _text(value: Any) -> str:
    """Prose or a table cell: HTML and Markdown marks escaped, so it shows as written."""
    return re.sub(r"([\\`*_\[\]|#<>&])", r"\\\1", _one_line(value))


def _code(value: Any) -> str:
    """The inside of a `code span` in a table: no backtick to end it, no pipe to split the row."""
    return _one_line(value).replace("`", "'").replace("|", "\\|")


def _file_name(path: Any) -> str:
    """Only the name of a data file: the card may travel, the folders it came from need not."""
    return PurePath(str(path)).name if path else "—"


def base_model(model: Mapping[str, Any]) -> str | None:
    """The hub id the run was fine-tuned from, when it has one (a local folder has none)."""
    source = str(model.get("source") or "")
    if source in _BUILTIN_HUB_IDS:
        return _BUILTIN_HUB_IDS[source]
    if source and source == model.get("resolved") and _HUB_ID.match(source):
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
    manifest: Mapping[str, Any], results: Sequence[tuple[str, Mapping[str, Any]]], name: str
) -> str:
    """The YAML metadata block, model-index included when a score was measured."""
    privacy = as_mapping(manifest.get("privacy"))
    tags = ["trustune", "text-classification"]
    if privacy.get("dp"):
        tags.append("differential-privacy")
    meta: dict[str, Any] = {
        "library_name": "transformers",
        "pipeline_tag": "text-classification",
        "tags": tags,
    }
    base = base_model(as_mapping(manifest.get("model")))
    if base:
        meta["base_model"] = base
    entries: list[dict[str, Any]] = []
    for result_name, result in results:
        scores: list[dict[str, Any]] = []
        for key, kind, label, config in _SCORES:
            value = finite(result.get(key))
            if value is not None:
                score = {"type": kind, "value": round(value, 4), "name": label}
                scores.append({**score, "config": config} if config else score)
        if scores:
            data = as_mapping(result.get("data"))
            dataset = _file_name(data.get("path")) if data.get("path") else result_name
            entries.append(
                {
                    "task": {"type": "text-classification", "name": "Text classification"},
                    "dataset": {"name": f"{result_name} ({dataset})", "type": dataset},
                    "metrics": scores,
                }
            )
    if entries:
        meta["metrics"] = sorted({score["type"] for e in entries for score in e["metrics"]})
        meta["model-index"] = [{"name": name, "results": entries}]
    return yaml.safe_dump(meta, sort_keys=False, allow_unicode=True, default_flow_style=False)


def _count(value: Any) -> str:
    """A count with thousands separators, a dash when missing."""
    number = finite(value)
    return "—" if number is None else f"{round(number):,}"


def _privacy(manifest: Mapping[str, Any]) -> dict[str, Any] | None:
    """What the card says about privacy: the DP guarantee, redaction, the membership audit."""
    privacy = as_mapping(manifest.get("privacy"))
    if not privacy:
        return None
    out: dict[str, Any] = {"dp": bool(privacy.get("dp"))}
    if out["dp"]:
        delta = finite(privacy.get("delta"))
        out.update(
            epsilon=_score(privacy.get("epsilon")),
            delta="—" if delta is None else f"{delta:.3g}",
            accountant=_text(privacy.get("accountant")),
            noise=_score(privacy.get("noise_multiplier"), 4),
            clipping=_text(privacy.get("max_grad_norm")),
            steps=_count(privacy.get("steps")),
        )
    out["redaction"] = [
        (
            _text(split),
            _count(sum(finite(n) or 0 for n in as_mapping(as_mapping(s).get("counts")).values())),
        )
        for split, s in as_mapping(privacy.get("redaction")).items()
    ]
    audit = as_mapping(privacy.get("audit"))
    if audit:
        interval = audit.get("auc_ci")
        low, high = interval if isinstance(interval, list) and len(interval) == 2 else (None, None)
        out["audit"] = {
            "auc": _score(audit.get("auc")),
            "low": _score(low),
            "high": _score(high),
            "attack": _text(audit.get("strongest_attack")),
            "tpr_1": _score(audit.get("tpr_at_1pct_fpr")),
            "tpr_01": _score(audit.get("tpr_at_0.1pct_fpr")),
            "members": _count(as_mapping(audit.get("members")).get("used")),
            "non_members": _count(as_mapping(audit.get("non_members")).get("used")),
        }
    return out


@functools.cache
def _template() -> jinja2.Template:
    """The card's body template (Markdown: values are made safe in Python, not by autoescape)."""
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("trustune.report", "templates"),
        autoescape=False,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    return environment.get_template("model_card.md.j2")


def _context(
    manifest: Mapping[str, Any], metrics: Mapping[str, Any], run_name: str,
    model_files: Mapping[str, str],
) -> dict[str, Any]:  # fmt: skip
    """The template's variables, each made safe for where the template puts it."""
    model = as_mapping(manifest.get("model"))
    training = as_mapping(manifest.get("training"))
    data = as_mapping(manifest.get("data"))
    train = as_mapping(data.get("train"))
    raw_labels = manifest.get("labels")
    labels: list[Any] = raw_labels if isinstance(raw_labels, list) else []
    max_length = as_mapping(as_mapping(manifest.get("config")).get("data")).get("max_length")
    return {
        "name": _text(run_name),
        "architecture": _text(model.get("architecture")),
        "parameters": _count(model.get("parameters")),
        "base": base_model(model),
        "source": _code(_file_name(model.get("source"))),
        "labels": [_code(label) for label in labels],
        "text_column": _code(manifest.get("text_column")),
        "max_length": _count(max_length),
        "train_rows": _count(train.get("rows")),
        "splits": [
            {
                "name": _text(name),
                "file": _code(_file_name(part.get("path"))),
                "rows": _count(part.get("rows")),
                "truncated": _count(part.get("truncated")),
                "sha256": _code(part.get("sha256")),
            }
            for name, part in ((n, as_mapping(p)) for n, p in data.items())
            if part
        ],
        "class_counts": [
            (_code(label), _count(count))
            for label, count in as_mapping(train.get("class_counts")).items()
        ],
        "hyperparameters": [
            (_code(key), _code(value)) for key, value, _ in hyperparameter_rows(manifest)
        ],
        "training": {
            "steps": _count(training.get("steps")),
            "epochs": _count(training.get("epochs_completed")),
            "precision": _text(training.get("precision")),
            "device": _text(training.get("device")),
            "selection": _text(training.get("selection_metric")),
            "best": _score(training.get("best_metric")),
        },
        "results": [
            {
                "name": _text(name),
                "file": _code(_file_name(as_mapping(result.get("data")).get("path"))),
                "rows": _count(as_mapping(result.get("data")).get("rows")),
                **{key: _score(result.get(key)) for key in ("accuracy", "f1_macro", "roc_auc")},
                "ece": _score(result.get("ece")),
            }
            for name, result in _results(metrics)
        ],
        "privacy": _privacy(manifest),
        "files": sorted((_code(name), _code(digest)) for name, digest in model_files.items()),
        "version": _text(manifest.get("trustune_version")),
        "created": _text(manifest.get("created")),
    }


def render_model_card(
    manifest: Mapping[str, Any],
    metrics: Mapping[str, Any],
    *,
    run_name: str,
    model_files: Mapping[str, str] | None = None,
) -> str:
    """The card as Markdown with YAML front matter; ``model_files`` maps file name to SHA-256."""
    front = _front_matter(manifest, _results(metrics), run_name)
    body = _template().render(_context(manifest, metrics, run_name, model_files or {}))
    return f"---\n{front}---\n\n{body}"


def run_name(run_dir: Path) -> str:
    """The run's name: its folder's, also while it is built in a staging folder beside it."""
    name = Path(run_dir).resolve().name
    staged = _STAGING.fullmatch(name)
    return staged.group(1) if staged else name


def write_model_card(
    run_dir: Path, manifest: Mapping[str, Any], metrics: Mapping[str, Any]
) -> Path | None:
    """Write ``model/README.md`` atomically; None (nothing written) without a plaintext model."""
    run_dir = Path(run_dir)
    folder = run_dir / MODEL_FOLDER
    if "encryption" in manifest or not (folder / "config.json").is_file():
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
