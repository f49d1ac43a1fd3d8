"""Defaults by data size: enough optimizer steps, a learning rate and a validation set that
can select a checkpoint, for the small data sets where today's fixed defaults give weak models.

At 300 rows, 3 epochs of batches of 32 are 27 optimizer steps: the loss has barely moved when
training ends. :func:`size_config` raises the epochs to reach :data:`MIN_STEPS`, takes a higher
learning rate, holds out at least :data:`MIN_VALIDATION_ROWS` rows where the data allow, and
below :data:`TINY_ROWS` rows turns early stopping off and selects the checkpoint on the
validation loss. Only keys the user did not set change (``RunConfig.explicit``, or a value
other than the default); from :data:`LARGE_ROWS` rows on, and under DP (where the epochs and
the batch size are part of the privacy guarantee), nothing does. The figures are measured in
``bench/small_data_defaults.py`` (BENCHMARKS.md, "Defaults by data size").
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trustune.config import RunConfig, SelectionMetric, config_flags
from trustune.data import LabeledData
from trustune.progress import Progress

__all__ = [
    "LARGE_ROWS",
    "MIN_STEPS",
    "MIN_VALIDATION_ROWS",
    "SMALL_DATA_LR",
    "TINY_ROWS",
    "Sizing",
    "left_to_sizing",
    "size_config",
    "sized_config",
]

# From this many labeled rows on, the fixed defaults stand (3 epochs are hundreds of steps).
LARGE_ROWS = 5_000
# Below this many, a validation split has a handful of rows: no early stopping on it.
TINY_ROWS = 50
# Optimizer steps a run takes at least (by more epochs; the batch size stays).
MIN_STEPS = 100
SMALL_DATA_LR = 1e-4
# Held out at least (where 20% of the rows allow it), as evaluate/learning.py asks for.
MIN_VALIDATION_ROWS = 30
MAX_VALIDATION_SHARE = 0.2
# With more epochs than this, validate (and write a checkpoint) this many times in all.
EVALUATIONS = 10


@dataclass(frozen=True)
class Sizing:
    """The config with the sized values, what was chosen (``"train.epochs": 12``) and why."""

    config: RunConfig
    rows: int
    classes: int | None
    chosen: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def record(self) -> dict[str, Any] | None:
        """For ``manifest["training"]["sizing"]``; None when nothing was chosen."""
        if not self.chosen:
            return None
        chosen = {k: v.value if isinstance(v, enum.Enum) else v for k, v in self.chosen.items()}
        return {"rows": self.rows, "classes": self.classes, "chosen": chosen, "notes": self.notes}


def _defaults() -> dict[str, Any]:
    defaults = RunConfig().to_dict()
    return {f"{s}.{k}": v for s, values in defaults.items() for k, v in values.items()}


def _flags() -> dict[str, str]:
    return {f"{section}.{f.name}": flag for flag, section, f in config_flags()}


def _value(config: RunConfig, key: str) -> Any:
    section, name = key.split(".", 1)
    value = getattr(getattr(config, section), name)
    return value.value if isinstance(value, enum.Enum) else value


def _user_set(config: RunConfig, explicit: Collection[str]) -> set[str]:
    """Keys given explicitly, or holding a value other than the default (a RunConfig built
    in Python does not say which keys were given)."""
    defaults = _defaults()
    return set(explicit) | {k for k, v in defaults.items() if _value(config, k) != v}


def _lr(value: float) -> str:
    return f"{value:.0e}".replace("e-0", "e-")


def _validation_rows(rows: int, fraction: float) -> int:
    return max(round(rows * fraction), 1)


def size_config(
    config: RunConfig, *, rows: int, classes: int | None, explicit: Collection[str] | None = None
) -> Sizing:
    """Choose the keys left unset by data size.

    ``rows``: the labeled rows of ``--data`` (before a validation split); ``classes``: the
    number of labels (None for regression); ``explicit``: the keys the user gave (default:
    ``config.explicit``).
    """
    taken = _user_set(config, config.explicit if explicit is None else explicit)
    unchanged = Sizing(config=config, rows=rows, classes=classes)
    if rows >= LARGE_ROWS or config.privacy.enabled:
        return unchanged
    chosen: dict[str, Any] = {}
    tc, dc = config.train, config.data
    split = dc.validation_file is None
    validation = _validation_rows(rows, dc.validation_fraction) if split else 0
    if split and "data.validation_fraction" not in taken:
        wanted = max(validation, min(MIN_VALIDATION_ROWS, round(rows * MAX_VALIDATION_SHARE)))
        if wanted > validation:
            # 4 decimals: round(rows * fraction) still gives `wanted` below LARGE_ROWS rows
            chosen["data.validation_fraction"] = round(wanted / rows, 4)
            validation = wanted
    train_rows = rows - validation
    batches = math.ceil(train_rows / tc.batch_size)
    steps_per_epoch = math.ceil(batches / tc.gradient_accumulation_steps)
    epochs = tc.epochs
    if "train.epochs" not in taken and steps_per_epoch * epochs < MIN_STEPS:
        epochs = chosen["train.epochs"] = math.ceil(MIN_STEPS / steps_per_epoch)
    if "train.lr" not in taken:
        chosen["train.lr"] = SMALL_DATA_LR
    if "train.evaluate_every" not in taken and epochs > EVALUATIONS and "train.epochs" in chosen:
        chosen["train.evaluate_every"] = math.ceil(steps_per_epoch * epochs / EVALUATIONS)
    tiny = rows < TINY_ROWS and split
    if tiny and "train.early_stopping_patience" not in taken:
        chosen["train.early_stopping_patience"] = 0
    if tiny and "train.selection_metric" not in taken:
        chosen["train.selection_metric"] = SelectionMetric.LOSS
    if not chosen:
        return unchanged
    sized = _with(config, chosen)
    return Sizing(
        config=sized,
        rows=rows,
        classes=classes,
        chosen=chosen,
        notes=_notes(chosen, rows=rows, split=split, validation=validation, steps=steps_per_epoch),
    )


def _with(config: RunConfig, chosen: dict[str, Any]) -> RunConfig:
    sections: dict[str, dict[str, Any]] = {}
    for key, value in chosen.items():
        section, name = key.split(".", 1)
        sections.setdefault(section, {})[name] = value
    replaced = {
        section: dataclasses.replace(getattr(config, section), **values)
        for section, values in sections.items()
    }
    return dataclasses.replace(config, **replaced)


_NOTED = ("train.epochs", "train.lr", "data.validation_fraction", "train.evaluate_every")


def _notes(
    chosen: dict[str, Any], *, rows: int, split: bool, validation: int, steps: int
) -> list[str]:
    """One line of what was chosen and the flags that override it; one more for tiny data."""
    flags = _flags()
    what = f"{rows:,} labeled rows" if split else f"{rows:,} training rows"
    parts = []
    if "train.epochs" in chosen:
        epochs = chosen["train.epochs"]
        parts.append(f"{epochs} epochs ({epochs * steps} optimizer steps; at least ~{MIN_STEPS})")
    if "train.lr" in chosen:
        parts.append(f"lr {_lr(chosen['train.lr'])}")
    if "data.validation_fraction" in chosen:
        share = chosen["data.validation_fraction"]
        parts.append(f"validation {validation} rows ({share:.0%})")
    if "train.evaluate_every" in chosen:
        parts.append(f"validated every {chosen['train.evaluate_every']} steps")
    tiny = [k for k in ("train.early_stopping_patience", "train.selection_metric") if k in chosen]
    main = [k for k in _NOTED if k in chosen]
    notes = []
    if main:
        notes.append(
            f"{what}, small data: {', '.join(parts)}; set "
            f"{'/'.join(flags[k] for k in main)} to override"
        )
    if tiny:
        notes.append(
            f"{what}: {validation} validation rows are too few to stop early on; early stopping "
            "off, the best checkpoint chosen by validation loss; set "
            f"{'/'.join(flags[k] for k in tiny)} to override"
        )
    return notes


def sized_config(
    config: RunConfig, train: LabeledData, *, classification: bool, progress: Progress
) -> tuple[RunConfig, dict[str, Any] | None]:
    """Size ``config`` by the training file read whole (before any validation split).

    Returns the sized config and the record for the manifest (None when nothing was chosen);
    the notes go to ``progress``.
    """
    from trustune.data import LabelMap

    classes = len(LabelMap.from_values(train.raw_labels)) if classification else None
    sizing = size_config(config, rows=len(train), classes=classes)
    for note in sizing.notes:
        progress.message(note)
    return sizing.config, sizing.record()


def left_to_sizing(given: RunConfig | None, checkpoint: Path) -> set[str]:
    """The keys a checkpointed run chose by data size that ``given`` leaves unset: resuming
    with the same arguments is no change of configuration."""
    if given is None:
        return set()
    try:
        state = json.loads((checkpoint / "state.json").read_text(encoding="utf-8"))["state"]
        chosen = (state.get("extra") or {}).get("sizing", {}).get("chosen", {})
    except (OSError, ValueError, KeyError, AttributeError):
        return set()  # train_model reports an unreadable checkpoint itself
    return set(chosen) - _user_set(given, given.explicit)
