"""The settings a run was trained with, as rows for the report and the model card."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from typing import Any

from trustune.manifest import Manifest

__all__ = ["hyperparameter_rows"]

# shown elsewhere (Data section, base model) or not a setting of the model: file paths, columns
_LEFT_OUT = frozenset(
    {
        "data.train_file",
        "data.validation_file",
        "data.text_column",
        "data.label_column",
        "data.text_pair_column",
        "model.name",
        "train.keep_checkpoints",
    }
)
_SECTIONS = ("train", "data", "model", "privacy")


@functools.cache
def _help() -> dict[str, str]:
    """The one-line help of every config key (``train.lr`` -> 'peak learning rate of AdamW')."""
    from trustune.config import RunConfig

    helps: dict[str, str] = {}
    for section in dataclasses.fields(RunConfig):
        kind = section.default_factory  # each section is a dataclass built by default
        if not dataclasses.is_dataclass(kind):
            continue
        for item in dataclasses.fields(kind):
            helps[f"{section.name}.{item.name}"] = str(item.metadata.get("help", ""))
    return helps


def _shown(value: Any) -> str:
    """A setting as text: yes/no, short floats (5e-05, 0.06), lists joined, a dash for none."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list | tuple):
        return ", ".join(_shown(item) for item in value) or "—"
    return str(value)


def _privacy_used(privacy: Mapping[str, Any]) -> bool:
    """Whether the privacy settings did anything (DP-SGD or PII redaction)."""
    return privacy.get("epsilon") is not None or bool(privacy.get("redact_pii"))


def hyperparameter_rows(manifest: Manifest) -> list[tuple[str, str, str]]:
    """(config key, value, what it means) for each setting of the run's config that shapes it."""
    config = manifest.config
    helps = _help()
    rows = []
    for section in _SECTIONS:
        values = config.get(section)
        if values is None:
            continue
        if section == "privacy" and not _privacy_used(values):
            continue
        for name, value in values.items():
            key = f"{section}.{name}"
            if key not in _LEFT_OUT:
                rows.append((key, _shown(value), helps.get(key, "")))
    return rows
