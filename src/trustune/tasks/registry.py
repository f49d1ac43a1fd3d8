"""The registry of tasks: a new task is a new entry, not edits across the stages."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from trustune.config import TaskType
from trustune.errors import ArtifactError, ConfigError
from trustune.manifest import DEFAULT_TASK, Manifest
from trustune.messages import shown

if TYPE_CHECKING:
    from trustune.tasks.base import Task

__all__ = [
    "detect_task",
    "get_task",
    "known_tasks",
    "register_task",
    "task_of_manifest",
    "tasks_in_order",
]

_TASKS: dict[str, type[Task]] = {}
T = TypeVar("T", bound="type[Task]")

# The task of a manifest that names none (format 1), and the task that claims anything.
_DEFAULT = DEFAULT_TASK


def register_task(cls: T) -> T:
    """Class decorator adding a task under its ``name``; a name taken twice is an error."""
    if cls.name in _TASKS:
        raise ConfigError(
            f"task {cls.name!r} is registered twice; the known tasks are {known_tasks()}"
        )
    _TASKS[cls.name] = cls
    return cls


def known_tasks() -> list[str]:
    """The names of every registered task, sorted."""
    return sorted(_TASKS)


def get_task(name: str) -> type[Task]:
    """The task class of ``name``; an unknown name lists the known ones."""
    task = _TASKS.get(str(name))
    if task is None:
        raise ConfigError(f"unknown task {shown(name)}; the known tasks are {known_tasks()}")
    return task


def tasks_in_order() -> list[type[Task]]:
    """The registered tasks, most specific first (the default, which claims anything, last)."""
    return sorted(_TASKS.values(), key=lambda t: t.name == _DEFAULT)


def detect_task(requested: TaskType, raw_targets: Sequence[Any]) -> tuple[type[Task], str | None]:
    """The task to train, and a note saying what was detected when ``requested`` is ``auto``.

    Tasks are asked in registry order, most specific first (regression claims scores;
    classification takes anything else).
    """
    if requested is not TaskType.AUTO:
        return get_task(requested.value), None
    for task in tasks_in_order():
        if task.claims(raw_targets):
            if task.name == _DEFAULT:
                return task, None
            return task, (
                f"task: {task.name} (detected: the targets are {task.target_noun}s); pass "
                f"--task {_DEFAULT} to override"
            )
    return get_task(_DEFAULT), None


def task_of_manifest(manifest: Manifest, *, where: str | None = None) -> Task:
    """The fitted task of a finished run; an unknown task names the known ones, and every
    error starts with ``where`` (the run folder) when given."""
    prefix = f"{where}: " if where else ""
    name = manifest.task
    if name not in _TASKS:
        raise ArtifactError(
            f"{prefix}the run's task {shown(name)} is not known to this trustune; the known "
            f"tasks are {known_tasks()} (a newer release wrote it?)"
        )
    try:
        return _TASKS[name].from_manifest(manifest)
    except ArtifactError as e:
        raise ArtifactError(f"{prefix}{e}") from None
