"""The registry of compression methods and what a method is given and gives back.

A method is a class registered by name (``register_method``); ``trustune compress --method
NAME[:ARGUMENT]`` looks it up (``prune:0.5``, ``distill:3``). Given a :class:`Job` (the loaded
parent, the folder to write the new ``model/`` into, the validation data and the settings), a
method writes that folder and returns a :class:`Compressed` saying how the model is stored
and opened. It never writes anything else: the runner writes the run around it, measures it
against the parent and refuses or keeps it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from trustune.errors import ConfigError

if TYPE_CHECKING:
    from trustune.compress.settings import CompressSettings
    from trustune.data import LabeledData
    from trustune.loaded import LoadedRun
    from trustune.progress import Progress

__all__ = [
    "METHODS",
    "Compressed",
    "Job",
    "Method",
    "MethodSpec",
    "describe_methods",
    "known_methods",
    "parse_method",
    "register_method",
    "save_model_parts",
    "torch_parent",
]


@dataclass(frozen=True)
class MethodSpec:
    """``NAME`` or ``NAME:ARGUMENT`` as given to ``--method``."""

    name: str
    argument: str | None = None

    def __str__(self) -> str:
        return self.name if self.argument is None else f"{self.name}:{self.argument}"


@dataclass
class Job:
    """What a method works on. ``validation`` is the guard's data (labeled): a method may
    calibrate on a sample of it (``sample``) but never trains on it (recovery and distillation
    train on the parent's training file or ``--unlabeled`` texts, see ``recovery.py``)."""

    parent: LoadedRun
    model_dir: Path  # write the new model/ folder here (it exists and is empty)
    spec: MethodSpec
    settings: CompressSettings
    validation: LabeledData
    progress: Progress | None = None

    def sample(self) -> LabeledData:
        """Calibration rows: a seeded pick of at most ``calibration_rows`` of the guard's data."""
        import numpy as np

        data = self.validation
        n, rows = len(data.texts), self.settings.calibration_rows
        if n <= rows:
            return data
        picked = np.random.default_rng(self.settings.seed).choice(n, rows, replace=False)
        return data.subset(np.sort(picked))


@dataclass
class Compressed:
    """How the written model is stored and opened, for the manifest's ``compression``."""

    engine: str  # what runs it, with its version
    format: str = "transformers"  # "transformers" (safetensors) or "onnx"
    load_transform: str | None = None  # e.g. "dynamic-int8"
    settings: dict[str, Any] = field(default_factory=dict)  # what the method chose
    parameters: int | None = None  # of the new model, where the method changed the count
    notes: list[str] = field(default_factory=list)  # said to the user and kept in the manifest


def torch_parent(job: Job, method: str) -> Any:
    """The parent's PyTorch model; a parent that is not one (an ONNX run) is refused."""
    import torch

    model = job.parent.model
    if not isinstance(model, torch.nn.Module):
        raise ConfigError(
            f"--method {method} needs a PyTorch model, and {job.parent.run_dir} holds "
            f"{type(model).__name__}; compress the run it was made from instead"
        )
    for module in model.modules():
        if type(module).__module__.startswith(("torch.ao.nn.quantized", "torch.nn.quantized")):
            raise ConfigError(
                f"--method {method}: {job.parent.run_dir} is already int8; compress the run it "
                "was made from instead"
            )
    return model


def save_model_parts(job: Job, *, config: bool = True) -> None:
    """The parent's tokenizer files (and config.json, unless ``save_pretrained`` of the new
    weights wrote it) into the new model folder."""
    if config:
        job.parent.model.config.save_pretrained(job.model_dir)
    job.parent.tokenizer.save_pretrained(job.model_dir)


class Method:
    """One compression method (subclass, set ``name`` and ``summary``, register)."""

    name: ClassVar[str]
    summary: ClassVar[str]  # one line for the --help list
    argument: ClassVar[str | None] = None  # "SPARSITY", "LAYERS": the method needs NAME:ARG
    argument_default: ClassVar[str | None] = None  # used when NAME alone is given

    def check(self, job: Job) -> None:
        """Refuse (``ConfigError``, saying why) a parent or argument this method cannot do."""

    def apply(self, job: Job) -> Compressed:
        raise NotImplementedError


METHODS: dict[str, type[Method]] = {}
M = TypeVar("M", bound=type[Method])


def register_method(cls: M) -> M:
    """Class decorator: ``cls`` is the method ``--method cls.name`` runs."""
    if cls.name in METHODS:
        raise ConfigError(f"compression method {cls.name!r} is registered twice")
    METHODS[cls.name] = cls
    return cls


def _load_builtins() -> None:
    # the built-in methods register themselves when imported
    import trustune.compress.onnx_methods
    import trustune.compress.torch_methods  # noqa: F401

    for extra in ("trustune.compress.prune", "trustune.compress.distill", "trustune.compress.auto"):
        try:
            __import__(extra)
        except ModuleNotFoundError as e:
            if e.name != extra:
                raise


def known_methods() -> dict[str, type[Method]]:
    """Every registered method by name, the built-ins included."""
    _load_builtins()
    return dict(METHODS)


def method_usage(cls: type[Method]) -> str:
    return cls.name if cls.argument is None else f"{cls.name}:{cls.argument}"


def parse_method(text: str) -> tuple[MethodSpec, Method]:
    """``NAME[:ARGUMENT]`` -> the spec and a method instance; unknown names list the known."""
    methods = known_methods()
    name, _, argument = str(text).strip().partition(":")
    if name not in methods:
        listing = ", ".join(method_usage(m) for m in methods.values())
        raise ConfigError(f"unknown compression method {text!r}; known: {listing}")
    cls = methods[name]
    if cls.argument is None and argument:
        raise ConfigError(f"--method {name} takes no argument; drop ':{argument}'")
    if cls.argument is not None and not argument:
        if cls.argument_default is None:
            raise ConfigError(
                f"--method {name} needs {name}:{cls.argument} (for example {name}:3)"
                if cls.argument == "LAYERS"
                else f"--method {name} needs {name}:{cls.argument}"
            )
        argument = cls.argument_default
    return MethodSpec(name, argument or None), cls()


def describe_methods() -> list[tuple[str, str]]:
    """``(usage, summary)`` of every method, for ``--help``."""
    return [(method_usage(m), m.summary) for m in known_methods().values()]
