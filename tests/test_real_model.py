"""A few tests with the real default model (all-MiniLM-L6-v2) on small data."""

from __future__ import annotations

from pathlib import Path

import pytest

import trustune

pytestmark = pytest.mark.slow


def test_minilm_learns_the_demo_task(tmp_path: Path) -> None:
    from trustune.data.demo import write_demo_dataset

    train, test = write_demo_dataset(tmp_path / "data", rows=260, seed=11)
    run = trustune.finetune(train, output=tmp_path / "run", epochs=3, lr=1e-4, batch_size=16,
                            measure_latency=False)  # fmt: skip
    model = trustune.load(run.path)
    result = model.evaluate(test, measure_latency=False)
    # 4 balanced classes: chance is 0.25. A few hundred examples are enough for MiniLM to do well.
    assert result["accuracy"] >= 0.7, result["accuracy"]
    assert run.manifest.model.architecture == "BertForSequenceClassification"
    assert (run.manifest.model.parameters or 0) > 20_000_000
