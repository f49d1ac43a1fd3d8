"""trustune: fine-tune a pretrained transformer on labeled text into a model you can trust."""

from __future__ import annotations

__version__ = "0.1.0"

from trustune.api import Run, finetune, load
from trustune.classifier import Prediction, TextClassifier
from trustune.config import DataConfig, ModelConfig, RunConfig, TrainConfig, load_config
from trustune.errors import TrustuneError
from trustune.progress import Progress

__all__ = [
    "DataConfig",
    "ModelConfig",
    "Prediction",
    "Progress",
    "Run",
    "RunConfig",
    "TextClassifier",
    "TrainConfig",
    "TrustuneError",
    "__version__",
    "finetune",
    "load",
    "load_config",
]
