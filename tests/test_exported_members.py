from __future__ import annotations

import importlib

import pytest

import trustune


def test_top_level_surface() -> None:
    assert set(trustune.__all__) == {
        "DataConfig", "Generation", "ModelConfig", "Prediction", "Progress", "Run", "RunConfig",
        "ScorePrediction", "TextClassifier", "TextGenerator", "TextRegressor", "TrainConfig", "TrustuneError",
        "TuneResult", "TuneSettings", "__version__", "finetune", "load", "load_config", "tune",
    }  # fmt: skip


@pytest.mark.parametrize(
    "module",
    ["trustune.data", "trustune.models", "trustune.evaluate", "trustune.report", "trustune.errors",
     "trustune.config", "trustune.train.checkpoint", "trustune.train.batching",
     "trustune.store", "trustune.serve", "trustune.tasks", "trustune.manifest", "trustune.runs",
     "trustune.tuning", "trustune.tracking"],
)  # fmt: skip
def test_every_public_name_exists(module: str) -> None:
    mod = importlib.import_module(module)
    assert mod.__all__
    for name in mod.__all__:
        assert hasattr(mod, name), f"{module}.{name}"


def test_errors_share_one_root() -> None:
    from trustune import errors

    for name in errors.__all__:
        assert issubclass(getattr(errors, name), errors.TrustuneError)


def test_every_top_level_name_resolves() -> None:
    for name in trustune.__all__:
        assert getattr(trustune, name) is not None, name
    assert trustune.TextRegressor.__module__ == "trustune.regressor"
    assert trustune.ScorePrediction(1.5).to_dict() == {"value": 1.5}
