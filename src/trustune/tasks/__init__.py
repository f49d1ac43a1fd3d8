"""The task layer: what kind of model a run is, asked by every stage (see docs/architecture.md).

Registered here: ``text-classification`` and ``text-regression`` (each for single texts or
text pairs). A new task is a new module with a :class:`Task` subclass decorated with
:func:`register_task`, imported below.
"""

from __future__ import annotations

from trustune.tasks.base import Task

# The entries: importing them registers them.
from trustune.tasks.classification import TextClassification
from trustune.tasks.prepare import PreparedData, prepare_training_data
from trustune.tasks.registry import (
    detect_task,
    get_task,
    known_tasks,
    register_task,
    task_of_manifest,
)
from trustune.tasks.regression import TextRegression, regression_metrics

__all__ = [
    "PreparedData",
    "Task",
    "TextClassification",
    "TextRegression",
    "detect_task",
    "get_task",
    "known_tasks",
    "prepare_training_data",
    "register_task",
    "regression_metrics",
    "task_of_manifest",
]
