"""``trustune.compress``: a run in, a smaller or faster run out, measured against its parent.

The new run is built in a hidden staging folder beside ``output``: the method writes its
``model/``, the runner writes the manifest (the parent's, with a ``compression`` section:
method, format, engine, the parent's folder and hashes, the guard's figures, the CPU's
features), loads the result exactly as ``trustune.load`` will, measures it on the guard's data
beside the parent, and only then writes the records and swaps the folder in. A refused or failed
compression leaves nothing behind and never touches the parent. An encrypted parent gives an
encrypted child under the same key (the plaintext staging folder is private, mode 0700, and
removed once the sealed copy is complete).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trustune.artifact import (
    MANIFEST,
    discard_staging,
    file_sha256,
    staging_dir,
    swap_in,
)
from trustune.compress.guard import check_drop, compare_outputs, measure, read_validation
from trustune.compress.hardware import cpu_features
from trustune.compress.methods import Compressed, Job, parse_method
from trustune.compress.settings import CompressSettings
from trustune.errors import ArtifactError, ConfigError
from trustune.loader import load, loaded_type
from trustune.manifest import CompressionRecord, Manifest, write_manifest
from trustune.models import load_run_model
from trustune.models.onnx_model import ONNX_FILE
from trustune.security.envelope import SEALED_SUFFIX

if TYPE_CHECKING:
    from trustune.loaded import LoadedRun
    from trustune.progress import Progress
    from trustune.security.loading import KeyLike

__all__ = ["CompressResult", "compress", "open_candidate"]


@dataclass(frozen=True)
class CompressResult:
    """What :func:`compress` wrote and measured."""

    path: Path
    method: str
    engine: str
    format: str
    guard: dict[str, Any]
    size_bytes: int
    parent_size_bytes: int
    notes: tuple[str, ...] = ()
    candidates: tuple[dict[str, Any], ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["path"] = str(self.path)
        return out


def model_size(folder: Path) -> int:
    """Bytes of the weights in a model folder (safetensors or ONNX, sealed or not)."""
    total = 0
    for path in folder.iterdir() if folder.is_dir() else ():
        name = path.name.removesuffix(SEALED_SUFFIX)
        if name.endswith((".safetensors", ".onnx")):
            total += path.stat().st_size
    return total


def _onnx_parameters(path: Path) -> int | None:
    try:
        import onnx
    except ImportError:
        return None
    graph = onnx.load(str(path), load_external_data=False).graph
    total = 0
    for tensor in graph.initializer:
        n = 1
        for d in tensor.dims:
            n *= int(d)
        total += n
    return total


def _parameters(model: Any, model_dir: Path, compressed: Compressed) -> int | None:
    if compressed.parameters is not None:
        return compressed.parameters
    if compressed.format == "onnx":
        return _onnx_parameters(model_dir / ONNX_FILE)
    params = getattr(model, "parameters", None)
    return sum(p.numel() for p in params()) if callable(params) else None


def _parent_record(parent: LoadedRun) -> dict[str, Any]:
    manifest_path = parent.run_dir / MANIFEST
    model_files = {k: v for k, v in sorted(parent.manifest.files.items()) if k.startswith("model/")}
    digest = hashlib.sha256(json.dumps(model_files, sort_keys=True).encode()).hexdigest()
    record: dict[str, Any] = {
        "run": str(parent.run_dir.resolve()),
        "manifest_sha256": file_sha256(manifest_path),
        "model_files_sha256": digest,
    }
    if parent.manifest.compression is not None:
        record["method"] = parent.manifest.compression.method
    return record


def child_manifest(
    parent: LoadedRun, spec: str, compressed: Compressed, settings: CompressSettings,
    parameters: int | None,
) -> Manifest:  # fmt: skip
    """The parent's manifest as the compressed run's: lineage added, per-model records dropped
    (evaluations, explanations, the membership audit and the encryption are the parent's)."""
    base = parent.manifest
    privacy = base.privacy
    if privacy is not None and privacy.audit is not None:
        privacy = dataclasses.replace(privacy, audit=None)
    record = CompressionRecord(
        method=spec, format=compressed.format, load_transform=compressed.load_transform,
        engine=compressed.engine, parent=_parent_record(parent),
        settings={**dataclasses.asdict(settings), **compressed.settings},
        hardware=cpu_features(), notes=tuple(compressed.notes),
    )  # fmt: skip
    model = dataclasses.replace(base.model, parameters=parameters)
    return dataclasses.replace(
        base, compression=record, metrics={}, explanations=None, encryption=None, files={},
        privacy=privacy, model=model,
    )  # fmt: skip


def open_candidate(job: Job, compressed: Compressed, manifest: Manifest | None = None) -> Any:
    """The written ``job.model_dir`` loaded as the task's object, as ``trustune.load`` would."""
    model = load_run_model(
        job.model_dir, fmt=compressed.format, transform=compressed.load_transform
    )
    if manifest is None:
        manifest = child_manifest(job.parent, str(job.spec), compressed, job.settings, None)
    cls = loaded_type(job.parent.task.name)
    return cls(job.model_dir.parent, model=model, tokenizer=job.parent.tokenizer, manifest=manifest)


def _data_name(data: str | Path | None, parent: LoadedRun) -> str:
    if data is not None:
        return Path(data).stem
    part = parent.manifest.data.validation
    return Path(part.path).stem if part is not None and part.path else "validation"


def compress(
    run: str | Path, *, method: str, output: str | Path, data: str | Path | None = None,
    settings: CompressSettings | None = None, overwrite: bool = False,
    key: KeyLike | None = None, progress: Progress | None = None,
) -> CompressResult:  # fmt: skip
    """Compress the run folder ``run`` with ``method`` (``onnx``, ``onnx-int8``, ``int8``,
    ``bf16``, ``prune:SPARSITY``, ``distill:LAYERS``, ``auto``) into the new run ``output``.

    ``data`` is labeled validation data (the parent's format and columns): the guard measures
    the result on it against the parent and refuses a drop of the main metric beyond
    ``settings.max_drop`` points unless ``settings.force``. Raises ``AccuracyDropError`` (nothing
    written) or returns what was written.
    """
    settings = settings or CompressSettings()
    run_dir, output = Path(run), Path(output)
    spec, method_impl = parse_method(method)
    if not (run_dir / MANIFEST).is_file():
        raise ArtifactError(f"{run_dir} is not a run folder (no {MANIFEST})")
    if output.resolve() == run_dir.resolve():
        raise ConfigError("--output must be a new folder; the parent run is never replaced")
    if output.exists() and not overwrite:
        raise ArtifactError(f"{output} already exists; pass --overwrite to replace it")
    parent = load(run_dir, key=key)
    validation = read_validation(parent, data)
    data_name = _data_name(data, parent)
    tmp = staging_dir(output)
    tmp.chmod(0o700)
    sealed_tmp: Path | None = None
    try:
        (tmp / "model").mkdir()
        job = Job(
            parent=parent, model_dir=tmp / "model", spec=spec, settings=settings,
            validation=validation, progress=progress,
        )  # fmt: skip
        method_impl.check(job)
        compressed = method_impl.apply(job)
        candidates = tuple(compressed.settings.pop("candidates", ()))
        child = open_candidate(job, compressed)
        parameters = _parameters(child.model, job.model_dir, compressed)
        manifest = child_manifest(parent, str(spec), compressed, settings, parameters)
        parent_metrics, parent_out = measure(parent, validation)
        child_metrics, child_out = measure(child, validation)
        metric = parent.task.default_selection
        guard = check_drop(
            metric=metric, parent_value=float(parent_metrics[metric]),
            child_value=float(child_metrics[metric]), max_drop=settings.max_drop,
            force=settings.force, method=str(spec), data=data_name,
        )  # fmt: skip
        guard |= compare_outputs(
            parent_out, child_out, classes=parent.task.name != "text-regression"
        )
        guard["rows"] = len(validation.texts)
        assert manifest.compression is not None
        record = dataclasses.replace(manifest.compression, guard=guard, candidates=candidates)
        manifest = dataclasses.replace(manifest, compression=record)
        _write_records(tmp, manifest, child_metrics, validation, data, data_name)
        if parent.manifest.encrypted:
            sealed_tmp = _sealed_copy(tmp, output, key)
            discard_staging(tmp)
            swap_in(sealed_tmp, output)
        else:
            swap_in(tmp, output)
    except BaseException:
        discard_staging(tmp)
        if sealed_tmp is not None:
            shutil.rmtree(sealed_tmp, ignore_errors=True)
        raise
    return CompressResult(
        path=output, method=str(spec), engine=compressed.engine, format=compressed.format,
        guard=guard, size_bytes=model_size(output / "model"),
        parent_size_bytes=model_size(run_dir / "model"), notes=tuple(compressed.notes),
        candidates=candidates,
    )  # fmt: skip


def _write_records(
    tmp: Path, manifest: Manifest, child_metrics: dict[str, Any], validation: Any,
    data: str | Path | None, data_name: str,
) -> None:  # fmt: skip
    """metrics.json (the guard's evaluation), model card, report, hashes; the manifest last."""
    from trustune.records import save_records
    from trustune.tasks import task_of_manifest

    info = {k: validation.info.get(k) for k in ("path", "sha256", "rows", "skipped_rows")}
    result = {"data": info, **child_metrics}
    summary = task_of_manifest(manifest).summary(result)
    manifest = dataclasses.replace(manifest, metrics={data_name: {**summary, "data": info}})
    write_manifest(tmp, manifest)  # the report builders read it
    save_records(tmp, manifest, {"evaluations": {data_name: result}})


def _sealed_copy(tmp: Path, output: Path, key: KeyLike | None) -> Path:
    """An encrypted copy of the staged run under the parent's key, beside ``output``."""
    from trustune.security.artifact import encrypt_run
    from trustune.security.keys import resolve_key

    source = resolve_key(key)
    if source is None:  # load() opened the parent, so a key was found
        raise ArtifactError("the parent is encrypted but no key was given for the new run")
    target = output.with_name(f".{output.name}.sealed-{tmp.name[-8:]}")
    shutil.rmtree(target, ignore_errors=True)
    encrypt_run(tmp, key=source, output=target)
    return target
