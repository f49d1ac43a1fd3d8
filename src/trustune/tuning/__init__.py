"""Hyperparameter search (``trustune tune``) on Optuna.

- :mod:`~trustune.tuning.settings`: :class:`TuneSettings` (trials, timeout, pruner, storage)
- :mod:`~trustune.tuning.space`: the search space per task, and from a YAML file
- :mod:`~trustune.tuning.pruning`: the loop observer that reports validations and prunes
- :mod:`~trustune.tuning.study`: the study in the store's database, the folder lock, resume
- :mod:`~trustune.tuning.privacy_cost`: the privacy cost of a search on private data
- :mod:`~trustune.tuning.runner`: :func:`tune` itself
- :mod:`~trustune.tuning.report`: the report's "Hyperparameter search" section

The package imports nothing heavy: the report imports its section module without loading
Optuna or the training stack.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trustune.tuning.runner import TuneResult, tune
    from trustune.tuning.settings import Pruner, TuneSettings

__all__ = ["Pruner", "TuneResult", "TuneSettings", "tune"]

_LAZY = {
    "TuneResult": "trustune.tuning.runner",
    "tune": "trustune.tuning.runner",
    "Pruner": "trustune.tuning.settings",
    "TuneSettings": "trustune.tuning.settings",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'trustune.tuning' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
