"""trustune: fine-tune a pretrained transformer on labeled text into a model you can trust."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from trustune.version import __version__

if TYPE_CHECKING:  # type checkers see the names; at run time they are imported on first use
    from trustune.api import Run, finetune, load
    from trustune.classifier import Prediction, TextClassifier
    from trustune.config import DataConfig, ModelConfig, RunConfig, TrainConfig, load_config
    from trustune.errors import TrustuneError
    from trustune.generator import Generation, TextGenerator
    from trustune.progress import Progress
    from trustune.regressor import ScorePrediction, TextRegressor
    from trustune.tuning import TuneResult, TuneSettings, tune

__all__ = [
    "DataConfig",
    "Generation",
    "ModelConfig",
    "Prediction",
    "Progress",
    "Run",
    "RunConfig",
    "ScorePrediction",
    "TextClassifier",
    "TextGenerator",
    "TextRegressor",
    "TrainConfig",
    "TrustuneError",
    "TuneResult",
    "TuneSettings",
    "__version__",
    "finetune",
    "load",
    "load_config",
    "tune",
]

# Importing torch and transformers takes seconds, so `import trustune` (and `trustune --help`)
# defers them: each public name's module is imported when the name is first read.
_LAZY = {
    "Run": "trustune.api",
    "finetune": "trustune.api",
    "load": "trustune.api",
    "Prediction": "trustune.classifier",
    "TextClassifier": "trustune.classifier",
    "ScorePrediction": "trustune.regressor",
    "TextRegressor": "trustune.regressor",
    "Generation": "trustune.generator",
    "TextGenerator": "trustune.generator",
    "DataConfig": "trustune.config",
    "ModelConfig": "trustune.config",
    "RunConfig": "trustune.config",
    "TrainConfig": "trustune.config",
    "load_config": "trustune.config",
    "TrustuneError": "trustune.errors",
    "Progress": "trustune.progress",
    "TuneResult": "trustune.tuning",
    "TuneSettings": "trustune.tuning",
    "tune": "trustune.tuning",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'trustune' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later reads skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
