"""Training data for a task: read the file, detect or check the task, split, encode targets."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from trustune.config import RunConfig, TaskType
from trustune.data import LabeledData, TrainingData, read_training_file, with_validation
from trustune.errors import ConfigError
from trustune.tasks.base import Task
from trustune.tasks.registry import detect_task, get_task, tasks_in_order

__all__ = ["PreparedData", "prepare_training_data", "task_of_file", "with_task_defaults"]


@dataclass
class PreparedData:
    """The data with targets encoded, the fitted task, the configuration it was prepared with,
    and what was detected (for the terminal)."""

    data: TrainingData
    task: Task
    config: RunConfig
    notes: list[str]


# Adjusts the configuration once the training file is read and its task known (the defaults
# chosen by data size, trustune.train.sizing); called before the validation split.
Adjust = Callable[[RunConfig, LabeledData, type[Task]], RunConfig]


def task_of_file(config: RunConfig) -> type[Task] | None:
    """The task ``config`` asks for, or the one that claims its training file by its columns
    alone (``task: auto`` on a file of conversations); None: detected from the targets."""
    if config.task.type is not TaskType.AUTO:
        return get_task(config.task.type.value)
    if config.data.train_file is None:
        return None
    return next((t for t in tasks_in_order() if t.claims_file(config.data.train_file)), None)


def with_task_defaults(config: RunConfig) -> RunConfig:
    """``config`` with the defaults of the task it will train (another default model, say)."""
    task = task_of_file(config)
    return config if task is None else task.with_defaults(config)


def prepare_training_data(config: RunConfig, *, adjust: Adjust | None = None) -> PreparedData:
    """``config.data`` read as ``config.task`` says (``auto``: detected from the targets)."""
    dc = config.data
    if dc.train_file is None:
        raise ConfigError("no training data: pass --data FILE (or data.train_file in the config)")
    own = task_of_file(config)
    if own is not None and (read := own.read_data(defaults := own.with_defaults(config))):
        config = defaults
        data, notes = read
        if config.task.type is TaskType.AUTO:
            notes = [f"task: {own.name} (detected from the file's columns); pass --task to "
                     "override", *notes]  # fmt: skip
        return PreparedData(data=data, task=own.fit(data, config), config=config, notes=notes)
    train, columns = read_training_file(
        dc.train_file, text_column=dc.text_column, label_column=dc.label_column,
        pair_column=dc.text_pair_column, skip_bad_rows=dc.skip_bad_rows, max_chars=dc.max_chars,
    )  # fmt: skip
    task_type, detected = detect_task(config.task.type, train.raw_labels)
    task_type.check_columns(train, columns, str(dc.train_file))
    if adjust is not None:
        config = adjust(config, train, task_type)
        dc = config.data
    data = with_validation(
        train, columns, stratified=task_type.stratified, validation_file=dc.validation_file,
        validation_fraction=dc.validation_fraction, skip_bad_rows=dc.skip_bad_rows,
        seed=config.train.seed, max_chars=dc.max_chars,
    )  # fmt: skip
    notes = [detected] if detected else []
    if columns.pair is not None:
        notes.append(
            f"text pairs: {columns.text!r} and {columns.pair!r}, encoded as the tokenizer's pair "
            "input"
        )
    return PreparedData(data=data, task=task_type.fit(data, config), config=config, notes=notes)
