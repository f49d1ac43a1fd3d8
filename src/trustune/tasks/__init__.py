"""The task layer: what kind of model a run is, asked by every stage (see docs/architecture.md).

Registered here: ``text-classification`` and ``text-regression`` (each for single texts or
text pairs) and ``causal-lm`` (chat and text generation). A new task is a new module with a :class:`Task` subclass decorated with
:func:`register_task`, imported below.
"""

from __future__ import annotations

from trustune.tasks.base import Task

# The entries: importing them registers them.
from trustune.tasks.causal_lm import CausalLM
from trustune.tasks.classification import TextClassification
from trustune.tasks.prepare import (
    PreparedData,
    prepare_training_data,
    task_of_file,
    with_task_defaults,
)
from trustune.tasks.registry import (
    detect_task,
    get_task,
    known_tasks,
    register_task,
    task_of_manifest,
)
from trustune.tasks.regression import TextRegression, regression_metrics

__all__ = [
    "CausalLM",
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
    "task_of_file",
    "task_of_manifest",
    "with_task_defaults",
]
