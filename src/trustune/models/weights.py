"""Checking loaded weights against the model: nothing missing but tied aliases, nothing extra."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch

from trustune.errors import CheckpointError, ModelError

__all__ = [
    "check_loading_info",
    "is_head_name",
    "load_weights",
    "tied_aliases",
]


def is_head_name(name: str, prefix: str) -> bool:
    """Whether a tensor belongs to the task head: outside the base model, or its pooler."""
    return not name.startswith(f"{prefix}.") or name.startswith(f"{prefix}.pooler.")


def tied_aliases(model: torch.nn.Module) -> dict[str, str]:
    """Tensor names that are another name of a tensor already listed (tied weights), to it."""
    first: dict[int, str] = {}
    aliases: dict[str, str] = {}
    for name, tensor in model.state_dict(keep_vars=True).items():
        owner = first.setdefault(id(tensor), name)
        if owner != name:
            aliases[name] = owner
    return aliases


def _names(keys: Iterable[Any]) -> list[str]:
    # transformers lists mismatched keys as (name, shape in file, shape in model)
    return sorted(str(k[0] if isinstance(k, tuple | list) else k) for k in keys)


def _listed(names: list[str]) -> str:
    more = f", +{len(names) - 3} more" if len(names) > 3 else ""
    return ", ".join(names[:3]) + more


def _untied(model: torch.nn.Module, missing: Iterable[str]) -> list[str]:
    """The missing names that are not tied aliases of a tensor that was loaded."""
    missing = set(missing)
    aliases = tied_aliases(model)
    return sorted(n for n in missing if not (n in aliases and aliases[n] not in missing))


def check_loading_info(model: Any, info: Mapping[str, Any], *, new_head: bool, source: str) -> None:
    """Refuse weights that leave model tensors uninitialised (``from_pretrained`` loading info).

    A trained model must find every tensor in its file (tied aliases aside). A base checkpoint
    loaded under a new head (``new_head``) may lack the head only: ``classifier.*`` and the
    pooler, which transformers then initialises.
    """
    missing = _untied(model, _names(info.get("missing_keys") or ()))
    mismatched = _names(info.get("mismatched_keys") or ())
    if new_head:
        prefix = str(getattr(model, "base_model_prefix", "") or "")
        missing = [n for n in missing if prefix and not is_head_name(n, prefix)]
        mismatched = [n for n in mismatched if prefix and not is_head_name(n, prefix)]
    if missing:
        total = len(model.state_dict())
        part = "of the base model outside the classification head " if new_head else ""
        raise ModelError(
            f"the weights of {source} lack {len(missing)} of the model's {total} tensors "
            f"{part}({_listed(missing)}); the weights file is incomplete or belongs to "
            "another model. Restore it from a good copy"
        )
    if mismatched:
        raise ModelError(
            f"the weights of {source} have {len(mismatched)} tensors of the wrong shape for "
            f"the model ({_listed(mismatched)}); config.json and the weights do not match"
        )


def load_weights(
    model: torch.nn.Module, state: dict[str, torch.Tensor], *, where: str, hint: str = ""
) -> None:
    """Load a state dict written by trustune; anything missing (but tied aliases) or extra fails."""
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as e:  # a tensor of another shape
        first = str(e).strip().splitlines()[-1].strip() if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{where} does not fit the model: {first}{hint}") from None
    missing = _untied(model, result.missing_keys)
    unexpected = sorted(result.unexpected_keys)
    if missing or unexpected:
        parts = [f"missing {len(missing)} tensors ({_listed(missing)})" if missing else "",
                 f"{len(unexpected)} unknown ({_listed(unexpected)})" if unexpected else ""]  # fmt: skip
        raise CheckpointError(
            f"{where} does not match the model: {'; '.join(p for p in parts if p)}; it was "
            f"written for another model or is damaged{hint}"
        )
