"""The search space of ``trustune tune``: which config keys a study varies, and over what.

A space maps config keys (``train.lr``) to a :class:`Param`: a float or int range (log scale
where the key spans orders of magnitude) or a list of choices. Each task has a default space in
a registry (:func:`register_space`; a new task adds its entry, the fallback serves the rest),
and a private run (``--dp-epsilon``) adds the knobs of DP-SGD. A YAML file (``--space``)
replaces the default::

    train.lr: {low: 1.0e-5, high: 3.0e-4, log: true}
    train.epochs: {low: 1, high: 4}
    train.batch_size: [16, 32, 64]
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from trustune.config import RunConfig, config_flags
from trustune.errors import ConfigError
from trustune.messages import shortened, shown

__all__ = [
    "DEFAULT_SPACE",
    "DP_SPACE",
    "Param",
    "SearchSpace",
    "default_space",
    "load_space",
    "register_space",
    "space_from_dict",
]


@dataclass(frozen=True)
class Param:
    """One searched key: a range (``low``..``high``, ``log`` scale) or ``choices``."""

    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = False
    choices: tuple[Any, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        if self.choices:
            return {"choices": list(self.choices)}
        return {"low": self.low, "high": self.high, "log": self.log, "integer": self.integer}

    def describe(self) -> str:
        if self.choices:
            return "{" + ", ".join(str(c) for c in self.choices) + "}"
        scale = ", log" if self.log else ""
        return f"[{self.low:g}, {self.high:g}{scale}]"

    def suggest(self, trial: Any, name: str) -> Any:
        """The value of ``name`` in an Optuna trial."""
        if self.choices:
            return trial.suggest_categorical(name, list(self.choices))
        assert self.low is not None and self.high is not None
        if self.integer:
            return trial.suggest_int(name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(name, float(self.low), float(self.high), log=self.log)


SearchSpace = dict[str, Param]

# Every task without an entry of its own: the knobs that move a fine-tune most.
DEFAULT_SPACE: SearchSpace = {
    "train.lr": Param(low=1e-5, high=3e-4, log=True),
    "train.epochs": Param(low=1, high=5, integer=True),
    "train.batch_size": Param(choices=(16, 32, 64)),
    "train.warmup_ratio": Param(low=0.0, high=0.2),
    "train.weight_decay": Param(low=0.0, high=0.1),
}
# Added under DP-SGD (replacing the same keys): the clipping norm C, the logical batch
# (batch_size x accumulation: the sample rate of the guarantee) and a higher learning rate.
DP_SPACE: SearchSpace = {
    "train.lr": Param(low=1e-4, high=1e-2, log=True),
    "train.max_grad_norm": Param(low=0.1, high=10.0, log=True),
    "train.gradient_accumulation_steps": Param(choices=(4, 8, 16)),
    "train.epochs": Param(low=1, high=4, integer=True),
}

_SPACES: dict[str, SearchSpace] = {}


def register_space(task: str, space: Mapping[str, Param]) -> None:
    """The default space of ``task`` (a task name of the task registry)."""
    _SPACES[task] = dict(space)


def default_space(task: str | None, *, private: bool) -> SearchSpace:
    """The space a study of ``task`` searches by default (``None``: detected from the data)."""
    space = dict(_SPACES.get(task or "", DEFAULT_SPACE))
    if private:
        space.update(DP_SPACE)
    return space


def _fields() -> dict[str, dataclasses.Field[Any]]:
    return {f"{section}.{f.name}": f for _, section, f in config_flags()}


# Keys a study must not vary: where the data are, what is trained, and the guarantee asked.
_FIXED = ("data.", "task.", "model.name", "privacy.epsilon", "privacy.delta", "train.seed")


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise ConfigError(f"{where}: {shown(value)} is not a number")
    return float(value)


def space_from_dict(raw: Any, *, source: str = "space") -> SearchSpace:
    """A space from ``{key: {low, high, log} | [choices]}``; a bad entry names the key."""
    if not isinstance(raw, Mapping) or not raw:
        raise ConfigError(
            f"{source}: expected a mapping of config keys to ranges or choices, e.g. "
            "'train.lr: {low: 1.0e-5, high: 1.0e-4, log: true}'"
        )
    known = _fields()
    space: SearchSpace = {}
    for key, entry in raw.items():
        where = f"{source}: {shortened(str(key))}"
        if key not in known:
            raise ConfigError(f"{where} is not a config key; use section.key as in the YAML "
                              "config (train.lr, train.epochs, privacy.clipping, ...)")  # fmt: skip
        if str(key).startswith(_FIXED):
            raise ConfigError(f"{where} cannot be searched (it defines the data, the model or "
                              "the privacy guarantee); set it with a flag instead")  # fmt: skip
        default = known[key].default
        if isinstance(entry, list | tuple):
            if not entry:
                raise ConfigError(f"{where}: an empty list of choices")
            try:  # each choice must be a valid value of the key
                for choice in entry:
                    RunConfig().with_overrides({key.split(".")[0]: {key.split(".")[1]: choice}})
            except ConfigError as e:
                raise ConfigError(f"{where}: {e}") from None
            space[key] = Param(choices=tuple(entry))
            continue
        if not isinstance(entry, Mapping) or not {"low", "high"} <= set(entry):
            raise ConfigError(f"{where}: give {{low: .., high: ..}} (optionally log: true) or "
                              "a list of choices")  # fmt: skip
        extra = set(entry) - {"low", "high", "log"}
        if extra:
            raise ConfigError(f"{where}: unknown field(s) {sorted(extra)}; use low, high, log")
        low, high = _number(entry["low"], where), _number(entry["high"], where)
        log = bool(entry.get("log", False))
        integer = isinstance(default, int) and not isinstance(default, bool)
        if not isinstance(default, int | float) or isinstance(default, bool):
            if known[key].metadata.get("type") not in (int, float):
                raise ConfigError(f"{where} is not numeric; give a list of choices")
            integer = known[key].metadata.get("type") is int
        if not low < high or (log and low <= 0):
            raise ConfigError(
                f"{where}: need low < high{' and low > 0 on a log scale' if log else ''}"
            )
        space[key] = Param(low=low, high=high, log=log, integer=integer)
    return space


def load_space(path: str | Path) -> SearchSpace:
    """A space from a YAML file (see the module docs)."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"--space {path}: no such file") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"--space {path}: not valid YAML ({shortened(str(e))})") from None
    return space_from_dict(raw, source=f"--space {path}")


def space_to_dict(space: Mapping[str, Param]) -> dict[str, Any]:
    return {key: param.to_dict() for key, param in space.items()}


def space_from_saved(saved: Mapping[str, Any]) -> SearchSpace:
    """The inverse of :func:`space_to_dict` (a study's stored space)."""
    out: SearchSpace = {}
    for key, entry in saved.items():
        if "choices" in entry:
            out[key] = Param(choices=tuple(entry["choices"]))
        else:
            out[key] = Param(
                low=entry["low"], high=entry["high"], log=entry["log"], integer=entry["integer"]
            )
    return out


def overrides_of(params: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """``{"train.lr": 1e-4}`` as the section overrides of :meth:`RunConfig.with_overrides`."""
    out: dict[str, dict[str, Any]] = {}
    for key, value in params.items():
        section, name = key.split(".", 1)
        out.setdefault(section, {})[name] = value
    return out


def describe(space: Mapping[str, Param]) -> Sequence[str]:
    return [f"{key} {param.describe()}" for key, param in space.items()]
