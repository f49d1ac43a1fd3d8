"""The run manifest (``trustune.json``): one typed record, one reader, one writer.

Everything that reads a run's manifest gets a :class:`Manifest` from :func:`read_manifest` (or
:meth:`Manifest.from_dict`); everything that writes one writes :meth:`Manifest.to_dict`
(:func:`write_manifest`). The reader checks the type of every key it knows and refuses the
first wrong one with an :class:`~trustune.errors.ArtifactError` naming the key and the file;
keys it does not know (a newer release's, a note added by hand) are kept in each record's
``extra`` and written back. A manifest read and written again is the same file byte for byte:
each record remembers the order of its keys and which of them were ``null`` (:class:`Layout`).

Format 2 (this release) lets the task decide the sections (``labels``, ``target``); format 1
runs were text classification, and a manifest that names no task still reads as one.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Self

from trustune.artifact import MANIFEST, atomic_write_json
from trustune.errors import ArtifactError
from trustune.messages import shown

__all__ = [
    "DEFAULT_TASK",
    "FORMAT",
    "FORMAT_VERSION",
    "CompressionRecord",
    "DataPart",
    "DataRecord",
    "EnvironmentRecord",
    "Layout",
    "Manifest",
    "ModelRecord",
    "PrivacyRecord",
    "Record",
    "TargetRecord",
    "TrainingRecord",
    "read_manifest",
    "write_manifest",
]

FORMAT = "trustune.run"
FORMAT_VERSION = 2  # 2: the task decides the sections (labels, target); 1: classification only
DEFAULT_TASK = "text-classification"  # the task of a manifest that names none (format 1)
_FIX = f"restore {MANIFEST} from a copy of the run, or train the run again"


@dataclass(frozen=True)
class Layout:
    """How a record lay in its file: the order of its keys and those that were ``null``;
    ``order`` is None for a record built in code."""

    order: tuple[str, ...] | None = None
    nulls: frozenset[str] = frozenset()


@dataclass(frozen=True, kw_only=True)
class Record:
    """A JSON object of the manifest: each key it knows is a typed field, the rest ``extra``.

    :meth:`to_dict` writes the keys in the order they were read, then the fields set since
    (those that differ from their default; in a record built in code also the ``ALWAYS`` ones).
    A field set to None is left out, unless it was read as ``null``.
    """

    ALWAYS: ClassVar[frozenset[str]] = frozenset()
    extra: Mapping[str, Any] = field(default_factory=dict)
    layout: Layout = field(default_factory=Layout, compare=False, repr=False)

    @classmethod
    def parse(cls, data: Any, *, key: str = "", source: str | Path | None = None) -> Self:
        """The record of the JSON object ``data`` found at ``key`` of the manifest."""
        if not isinstance(data, Mapping):
            raise _damaged(key, data, "an object", source)
        known = _fields(cls)
        values: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for name, value in data.items():
            if name in known:
                values[name] = _checked(value, known[name], _join(key, name), source)
            else:
                extra[str(name)] = copy.deepcopy(value)
        nulls = frozenset(n for n in known if n in data and data[n] is None)
        return cls(**values, extra=extra, layout=Layout(tuple(map(str, data)), nulls))

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of this record (fresh containers: changing it changes nothing here)."""
        known = _fields(type(self))
        defaults = _defaults(type(self))
        order = self.layout.order
        out: dict[str, Any] = {}
        for name in order or ():
            if name in known:
                value = getattr(self, name)
                if value is not None:
                    out[name] = _plain(value)
                elif name in self.layout.nulls:
                    out[name] = None
            elif name in self.extra:
                out[name] = copy.deepcopy(self.extra[name])
        for name in known:
            value = getattr(self, name)
            if name in out or value is None or (order is not None and name in order):
                continue
            if value != defaults.get(name) or (order is None and name in self.ALWAYS):
                out[name] = _plain(value)
        for name, value in self.extra.items():
            if name not in out and name not in known:
                out[name] = copy.deepcopy(value)
        return out


# -- the sections -------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class TargetRecord(Record):
    """``target``: a regression run's target column and the statistics it was scaled by."""

    column: str | None = None
    statistics_from: str | None = None  # "train", or "validation" for a DP run
    min: float | None = None
    max: float | None = None
    mean: float | None = None
    std: float | None = None
    standardised: bool | None = None
    folded: bool = False  # the statistics are folded into the head: outputs are in the unit
    loss: str | None = None


@dataclass(frozen=True, kw_only=True)
class DataPart(Record):
    """One split of ``data``: the file's fingerprint and what training made of it."""

    path: str | None = None
    sha256: str | None = None
    rows: int | None = None
    skipped_rows: int | None = None
    text_chars: Mapping[str, Any] = field(default_factory=dict)
    chars_cut: int | None = None
    class_counts: Mapping[str, int] = field(default_factory=dict)
    target_stats: Mapping[str, Any] = field(default_factory=dict)
    source: str | None = None  # how a separate validation file was named
    split_from: str | None = None
    split_from_train: bool = False
    truncated: int | None = None


@dataclass(frozen=True, kw_only=True)
class DataRecord(Record):
    """``data``: the training and validation splits."""

    train: DataPart | None = None
    validation: DataPart | None = None

    def splits(self) -> list[tuple[str, DataPart]]:
        """``(name, split)`` of the splits recorded, training first."""
        found = (("train", self.train), ("validation", self.validation))
        return [(name, part) for name, part in found if part is not None]


@dataclass(frozen=True, kw_only=True)
class ModelRecord(Record):
    """``model``: the base model as given and as resolved, and what was fine-tuned."""

    source: str | None = None
    resolved: str | None = None
    architecture: str | None = None
    parameters: int | None = None


@dataclass(frozen=True, kw_only=True)
class TrainingRecord(Record):
    """``training``: how the run trained (hardware, steps, selection, speed, history)."""

    precision: str | None = None
    attention: str | None = None
    device: str | None = None
    world_size: int | None = None
    steps: int | None = None
    epochs_completed: int | None = None
    samples_seen: int | None = None
    best_step: int | None = None
    best_metric: float | None = None
    selection_metric: str | None = None
    selection_data: str | None = None
    stopped_early: bool | None = None
    wall_time_s: float | None = None
    train_samples_per_s: float | None = None
    loop_time_s: float | None = None
    loop_samples_per_s: float | None = None
    history: tuple[Mapping[str, Any], ...] = ()  # one entry per validation
    sizing: Mapping[str, Any] | None = None  # the defaults chosen by data size


@dataclass(frozen=True, kw_only=True)
class EnvironmentRecord(Record):
    """``environment``: Python, platform and the versions of the packages that shape a run."""

    python: str | None = None
    platform: str | None = None
    packages: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class PrivacyRecord(Record):
    """``privacy``: the DP guarantee spent (when ``dp``), PII redaction and the membership audit."""

    ALWAYS = frozenset({"dp"})
    dp: bool = False
    epsilon: float | None = None
    delta: float | None = None
    delta_rule: str | None = None
    accountant: str | None = None
    noise_multiplier: float | None = None
    max_grad_norm: float | None = None
    sample_rate: float | None = None
    steps: int | None = None
    target_epsilon: float | None = None
    planned_steps: int | None = None
    logical_batch_size: int | None = None
    physical_batch_size: int | None = None
    clipping: str | None = None
    sampling: str | None = None
    frozen: tuple[str, ...] = ()
    train_rows: int | None = None
    accountant_history: tuple[Any, ...] = ()
    selection: str | None = None
    redaction: Mapping[str, Mapping[str, Any]] | None = None  # per split: what was redacted
    audit: Mapping[str, Any] | None = None  # the membership audit's summary


@dataclass(frozen=True, kw_only=True)
class CompressionRecord(Record):
    """``compression``: a run made from another by ``trustune compress``: the method, how its
    model is stored and opened, the parent it came from and what the accuracy guard measured."""

    ALWAYS = frozenset({"method", "format"})
    method: str = ""
    format: str = "transformers"  # "transformers" (safetensors) or "onnx" (model/model.onnx)
    load_transform: str | None = None  # applied when loading, e.g. "dynamic-int8"
    engine: str | None = None  # what runs it: "onnxruntime 1.x", "torch.ao dynamic int8", ...
    parent: Mapping[str, Any] | None = None  # run folder, manifest and model hashes, method
    settings: Mapping[str, Any] = field(default_factory=dict)
    guard: Mapping[str, Any] | None = None  # metric, parent and child values, drop, max_drop
    candidates: tuple[Mapping[str, Any], ...] = ()  # --method auto: every candidate measured
    hardware: Mapping[str, Any] | None = None  # CPU features the choice depended on
    notes: tuple[str, ...] = ()  # what the method warned about (slow on this CPU, ...)


@dataclass(frozen=True, kw_only=True)
class Manifest(Record):
    """A run's ``trustune.json``. Sections a run did not record read as empty records (or None
    where being absent means something: ``privacy``, ``encryption``, ``labels``, ``target``)."""

    ALWAYS = frozenset({"format", "format_version", "task"})
    format: str = FORMAT
    format_version: int = FORMAT_VERSION
    task: str = DEFAULT_TASK
    created: str | None = None
    trustune_version: str | None = None
    config: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # the resolved RunConfig
    labels: tuple[str | int, ...] | None = None  # classification
    target: TargetRecord | None = None  # regression
    generation: Mapping[str, Any] | None = None  # causal-lm: data format, template, LoRA
    text_column: str | None = None
    label_column: str | None = None
    text_pair_column: str | None = None
    data: DataRecord = field(default_factory=DataRecord)
    model: ModelRecord = field(default_factory=ModelRecord)
    training: TrainingRecord = field(default_factory=TrainingRecord)
    environment: EnvironmentRecord = field(default_factory=EnvironmentRecord)
    privacy: PrivacyRecord | None = None
    files: Mapping[str, str] = field(default_factory=dict)  # relative name -> SHA-256
    metrics: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # evaluation summaries
    explanations: Mapping[str, Any] | None = None  # the summary of explanations.json
    encryption: Mapping[str, Any] | None = None  # read by trustune.security.envelope
    compression: CompressionRecord | None = None  # a run made by trustune compress

    @classmethod
    def from_dict(cls, data: Any, *, source: str | Path | None = None) -> Manifest:
        """The manifest of a parsed ``trustune.json``; ``source`` (the file) starts every error."""
        where = f"{source}" if source is not None else "the manifest"
        if not isinstance(data, Mapping) or data.get("format") != FORMAT:
            raise ArtifactError(f"{where} is not a trustune manifest")
        if "format_version" not in data:
            raise ArtifactError(f"{where} is damaged: it has no 'format_version'; {_FIX}")
        version = data["format_version"]
        if isinstance(version, int) and not isinstance(version, bool) and version > FORMAT_VERSION:
            folder = Path(source).parent if source is not None else "the run"
            raise ArtifactError(
                f"{folder} was written by a newer trustune (format {version}); upgrade trustune"
            )
        manifest = cls.parse(data, source=source)
        if manifest.format_version < 1:
            raise _damaged("format_version", version, "a format version of at least 1", source)
        return manifest

    @property
    def encrypted(self) -> bool:
        """Whether the run's payload files are sealed (an ``encryption`` section)."""
        return self.encryption is not None

    @property
    def pairs(self) -> bool:
        """Whether the run was trained on text pairs."""
        return bool(self.text_pair_column)

    def setting(self, section: str, name: str, default: Any = None) -> Any:
        """A value of the run's resolved config (``setting("data", "max_length")``)."""
        return self.config.get(section, {}).get(name, default)


def read_manifest(run_dir: str | Path) -> Manifest:
    """The manifest of a run folder; a one-line error when it is no run or the file is damaged."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ArtifactError(f"no run folder {run_dir}")
    path = run_dir / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ArtifactError(
            f"{run_dir} is not a trustune run (no {MANIFEST}); train one with `trustune train`"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ArtifactError(f"{path} cannot be read as a trustune manifest: {e}") from None
    return Manifest.from_dict(data, source=path)


def write_manifest(run_dir: str | Path, manifest: Manifest) -> Path:
    """Write ``trustune.json`` atomically; returns its path."""
    path = Path(run_dir) / MANIFEST
    atomic_write_json(path, manifest.to_dict())
    return path


# -- reading and writing fields by their type ---------------------------------------------------

_NONE = type(None)


_FIELDS: dict[type[Record], dict[str, Any]] = {}
_DEFAULTS: dict[type[Record], dict[str, Any]] = {}


def _fields(cls: type[Record]) -> dict[str, Any]:
    """The JSON keys of a record and their types, in declared order (worked out once)."""
    if cls not in _FIELDS:
        hints = typing.get_type_hints(cls)
        names = [f.name for f in dataclasses.fields(cls) if f.name not in ("extra", "layout")]
        _FIELDS[cls] = {name: hints[name] for name in names}
    return _FIELDS[cls]


def _defaults(cls: type[Record]) -> dict[str, Any]:
    """The default of each field of a record."""
    if cls not in _DEFAULTS:
        out = {}
        for f in dataclasses.fields(cls):
            if f.default is not dataclasses.MISSING:
                out[f.name] = f.default
            elif f.default_factory is not dataclasses.MISSING:
                out[f.name] = f.default_factory()
        _DEFAULTS[cls] = out
    return _DEFAULTS[cls]


def _join(key: str, name: str) -> str:
    return f"{key}.{name}" if key else name


def _kind(hint: Any) -> str:
    """What a message calls a JSON value of this type."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        arms = [_kind(a) for a in typing.get_args(hint) if a is not _NONE]
        kind = " or ".join(arms)
        return f"{kind} or null" if _NONE in typing.get_args(hint) else kind
    if origin is tuple:
        return "a list"
    if origin is Mapping or (isinstance(hint, type) and issubclass(hint, Record)):
        return "an object"
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}
    return names.get(hint, "a value")


def _damaged(key: str, value: Any, kind: str, source: str | Path | None) -> ArtifactError:
    where = f"{source}: " if source is not None else ""
    return ArtifactError(
        f"{where}the manifest key {key!r} is {shown(value, limit=40)}, not {kind}; the file is "
        f"damaged: {_FIX}"
    )


def _fits(value: Any, hint: Any) -> bool:
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    return False


def _checked(
    value: Any, hint: Any, key: str, source: str | Path | None, kind: str | None = None
) -> Any:
    """``value`` as the field of type ``hint`` holds it; an error naming ``key`` if it is not one.

    Numbers keep their JSON type (an integer in a float field stays an integer), so a
    manifest written back is the file it was read from.
    """
    kind = kind or _kind(hint)
    if hint is Any:
        return copy.deepcopy(value)
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        arms = typing.get_args(hint)
        if value is None and _NONE in arms:
            return None
        others = [a for a in arms if a is not _NONE]
        if len(others) == 1:
            return _checked(value, others[0], key, source, kind)
        if any(_fits(value, arm) for arm in others):
            return value
        raise _damaged(key, value, kind, source)
    if origin is tuple:
        if not isinstance(value, list):
            raise _damaged(key, value, kind, source)
        item = typing.get_args(hint)[0]
        return tuple(_checked(v, item, f"{key}[{i}]", source) for i, v in enumerate(value))
    if origin is Mapping:
        if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
            raise _damaged(key, value, kind, source)
        item = typing.get_args(hint)[1]
        return {k: _checked(v, item, _join(key, k), source) for k, v in value.items()}
    if isinstance(hint, type) and issubclass(hint, Record):
        if not isinstance(value, Mapping):
            raise _damaged(key, value, kind, source)
        return hint.parse(value, key=key, source=source)
    if _fits(value, hint):
        return value
    raise _damaged(key, value, kind, source)


def _plain(value: Any) -> Any:
    """A field's value as JSON data (records as objects, tuples as lists), copied."""
    if isinstance(value, Record):
        return value.to_dict()
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
