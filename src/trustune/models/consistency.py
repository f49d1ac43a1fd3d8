"""Checking that a run's parts fit together: manifest labels, model outputs, tokenizer, lengths."""

from __future__ import annotations

import re
from typing import Any

from trustune.errors import ArtifactError

__all__ = ["check_input_fit", "check_run_parts"]

_DEFAULT_LABEL = re.compile(r"^LABEL_\d+$")  # transformers' name for a label nobody named


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_input_fit(model: Any, tokenizer: Any, *, max_length: Any, where: str) -> int:
    """Refuse a tokenizer or ``max_length`` the model's embeddings cannot take; returns it."""
    if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 2:
        raise ArtifactError(
            f"{where}: max_length must be an integer of at least 2, not {_short(max_length)}; "
            "fix config.data.max_length in trustune.json or train the run again"
        )
    positions = getattr(model.config, "max_position_embeddings", None)
    if isinstance(positions, int) and max_length > positions:
        raise ArtifactError(
            f"{where}: max_length {max_length} is longer than the model's "
            f"{positions} position embeddings; use a max_length of at most {positions}"
        )
    embeddings = model.get_input_embeddings()
    rows = getattr(embeddings, "num_embeddings", None)
    vocabulary = len(tokenizer)
    if isinstance(rows, int) and vocabulary > rows:
        raise ArtifactError(
            f"{where}: the tokenizer has {vocabulary} tokens but the model's embeddings hold "
            f"{rows}; the tokenizer does not belong to this model (restore the run's model/ "
            "folder, or resize the embeddings when adding tokens)"
        )
    return max_length


def check_run_parts(model: Any, tokenizer: Any, *, labels: Any, max_length: Any, where: str) -> int:
    """Refuse a run whose manifest, model and tokenizer disagree; returns ``max_length``."""
    if (
        not isinstance(labels, list)
        or len(labels) < 2
        or any(isinstance(x, bool) or not isinstance(x, str | int) for x in labels)
    ):
        raise ArtifactError(
            f"{where}: the manifest's labels must be a list of at least two strings or "
            f"integers, not {_short(labels)}"
        )
    if len({str(x) for x in labels}) != len(labels):
        raise ArtifactError(f"{where}: the manifest lists a label twice: {_short(labels)}")
    outputs = getattr(model.config, "num_labels", None)
    if outputs != len(labels):
        raise ArtifactError(
            f"{where}: the manifest lists {len(labels)} labels but the model has {outputs} "
            "outputs (num_labels in config.json); the manifest and the model are not of the "
            "same run. Restore the run from a good copy or train it again"
        )
    id2label = getattr(model.config, "id2label", None) or {}
    named = [str(id2label.get(i, "")) for i in range(len(labels))]
    if not all(_DEFAULT_LABEL.match(n) for n in named) and named != [str(x) for x in labels]:
        raise ArtifactError(
            f"{where}: the manifest's labels {_short([str(x) for x in labels])} are not the "
            f"model's (id2label in config.json: {_short(named)}); the manifest and the model "
            "are not of the same run"
        )
    return check_input_fit(model, tokenizer, max_length=max_length, where=where)
