"""The front door: ``trustune.finetune`` and ``trustune.load``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trustune.classifier import TextClassifier, load
from trustune.config import RunConfig, TrainConfig, load_config
from trustune.errors import ConfigError
from trustune.progress import Progress

__all__ = ["Run", "finetune", "load"]

_TRAIN_KEYS = {f for f in TrainConfig.__dataclass_fields__}


class Run:
    """A finished run: its folder, manifest and metrics, and the loaded classifier."""

    def __init__(self, classifier: TextClassifier) -> None:
        self.classifier = classifier
        self.path = classifier.run_dir
        self.manifest = classifier.manifest

    @property
    def metrics(self) -> dict[str, Any]:
        from trustune.artifact import read_metrics

        return read_metrics(self.path)

    def __repr__(self) -> str:
        return f"Run(path={str(self.path)!r})"


def finetune(
    data: str | Path | None = None,
    *,
    validation: str | Path | None = None,
    model: str | None = None,
    output: str | Path = "runs/latest",
    config: RunConfig | str | Path | None = None,
    text_column: str | None = None,
    label_column: str | None = None,
    max_length: int | None = None,
    skip_bad_rows: bool | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: Progress | None = None,
    measure_latency: bool = True,
    **train_options: Any,
) -> Run:
    """Fine-tune a pretrained transformer on labeled texts and write the run folder.

    ``train_options`` are the fields of :class:`~trustune.config.TrainConfig`
    (``epochs``, ``batch_size``, ``lr``, ...); they override ``config``.
    """
    from trustune.run import write_trained_run
    from trustune.train.loop import train_model

    unknown = sorted(set(train_options) - _TRAIN_KEYS)
    if unknown:
        raise ConfigError(f"unknown training option(s) {unknown}. Allowed: {sorted(_TRAIN_KEYS)}")
    base = load_config(config) if isinstance(config, str | Path) else (config or RunConfig())
    data_overrides = {
        "train_file": str(data) if data is not None else None,
        "validation_file": str(validation) if validation is not None else None,
        "text_column": text_column,
        "label_column": label_column,
        "max_length": max_length,
        "skip_bad_rows": skip_bad_rows,
    }
    overrides: dict[str, dict[str, Any]] = {
        "data": {k: v for k, v in data_overrides.items() if v is not None},
        "model": {"name": model} if model is not None else {},
        "train": train_options,
    }
    nothing_given = data is None and config is None and model is None and not train_options
    run_config = None if resume and nothing_given else base.with_overrides(overrides)
    run_dir = Path(output)
    trained = train_model(
        run_config, run_dir, resume=resume, overwrite=overwrite, progress=progress
    )
    return Run(write_trained_run(run_dir, trained, measure_latency=measure_latency))
