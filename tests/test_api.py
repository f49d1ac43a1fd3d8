"""The Python front door: rows in memory, every config field by keyword, quiet libraries, Jupyter."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import trustune
from trustune.api import option_names
from trustune.errors import ConfigError, DataError, PrivacyError
from trustune.progress import Progress


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


class _Steps(Progress):
    def __init__(self) -> None:
        self.tasks: list[str] = []
        self.advanced = 0

    def start(self, task: str, *, total: int | None = None, completed: int = 0) -> None:
        self.tasks.append(task)

    def advance(self, task: str, amount: int = 1, **fields: Any) -> None:
        self.advanced += amount


def test_finetune_takes_rows_in_memory_and_keeps_libraries_quiet(
    tmp_path: Path,
    tiny_model: Path,
    demo_files: tuple[Path, Path],
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A DataFrame to train on, (text, label) pairs to validate on; only trustune's progress
    reports, transformers' own bars stay silent and are switched back on afterwards."""
    from transformers.utils import logging as hf_logging

    # a CLI test run in this process before may have switched them off (cli.main does)
    monkeypatch.setattr(hf_logging, "_tqdm_active", True)
    train = pd.DataFrame(_rows(demo_files[0])).rename(columns={"text": "Ticket text"})
    before = train.copy()
    pairs = [(r["text"], r["label"]) for r in _rows(demo_files[1])]
    steps = _Steps()
    capfd.readouterr()
    run = trustune.finetune(
        train, validation=pairs, text_column="Ticket text", label_column="label",
        model=str(tiny_model), output=tmp_path / "run", epochs=1, batch_size=32, lr=1e-3,
        measure_latency=False, progress=steps,
    )  # fmt: skip
    err = capfd.readouterr().err
    assert "Loading weights" not in err and "Writing model shards" not in err and "it/s" not in err
    assert hf_logging.is_progress_bar_enabled()
    assert "train" in steps.tasks and steps.advanced > 0
    pd.testing.assert_frame_equal(train, before)  # the caller's frame is left as it was
    data = run.manifest.data
    assert data.train is not None and data.validation is not None
    assert data.train.rows == len(train) and data.validation.rows == len(pairs)
    assert run.metrics["validation"]["data"]["rows"] == len(pairs)
    assert run.manifest.labels == ("account", "billing", "shipping", "technical")
    assert not Path(str(data.train.path)).exists()  # the temporary file is gone

    dicts = [{"text": t, "label": y} for t, y in pairs[:24]] * 2
    again = trustune.finetune(
        dicts, model=str(tiny_model), output=tmp_path / "dicts", epochs=1, lr=1e-3,
        measure_latency=False, progress=False,
    )  # fmt: skip
    rows = [part.rows or 0 for _, part in again.manifest.data.splits()]
    assert len(rows) == 2 and sum(rows) == 48


def test_bad_rows_in_memory_say_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="data: no rows"):
        trustune.finetune([], output=tmp_path / "r", progress=False)
    with pytest.raises(DataError, match="the DataFrame has no rows"):
        trustune.finetune(pd.DataFrame(), output=tmp_path / "r", progress=False)
    with pytest.raises(ConfigError, match=r"must all be mappings .* or all \(text, label\) pairs"):
        trustune.finetune([("a", "x"), {"text": "b"}], output=tmp_path / "r", progress=False)
    with pytest.raises(ConfigError, match="validation: int is not data; give a file path"):
        trustune.finetune("x.csv", validation=3, output=tmp_path / "r", progress=False)  # type: ignore[arg-type]


def test_every_config_field_is_a_keyword(tmp_path: Path) -> None:
    """DP, privacy and data options are keywords named like the CLI flags; a typo lists them."""
    names = option_names()
    assert {"epochs", "max_grad_norm", "dp_epsilon", "dp_delta", "accountant", "dp_clipping",
            "dp_physical_batch_size", "dp_freeze_embeddings", "redact_pii",
            "validation_fraction", "attention"} <= set(names)  # fmt: skip
    assert not {"train_file", "name", "data", "text_column"} & set(names)  # named arguments
    with pytest.raises(ConfigError, match=r"unknown option\(s\) \['dp_epsilo'\] of finetune\. "
                       r"Allowed: \[.*'dp_epsilon'"):  # fmt: skip
        trustune.finetune("x.csv", dp_epsilo=8, output=tmp_path / "r", progress=False)
    # the values reach the config: its checks run (before any data is read)
    with pytest.raises(PrivacyError, match="--dp-epsilon must be > 0"):
        trustune.finetune("x.csv", dp_epsilon=-1.0, output=tmp_path / "r", progress=False)
    with pytest.raises(PrivacyError, match=r"privacy\.delta is set without privacy\.epsilon"):
        trustune.finetune("x.csv", dp_delta=1e-6, output=tmp_path / "r", progress=False)
    with pytest.raises(ConfigError, match="validation_fraction"):
        trustune.finetune("x.csv", validation_fraction=1.5, output=tmp_path / "r", progress=False)


def test_run_shows_itself_in_jupyter(tmp_path: Path, tiny_run: Path) -> None:
    import shutil

    folder = tmp_path / "a<b>&c"
    shutil.copytree(tiny_run, folder)
    run = trustune.api.Run(trustune.load(folder))
    html = run._repr_html_()
    assert "a&lt;b&gt;&amp;c" in html and "<b>&c" not in html
    assert "text-classification" in html and "account, billing, shipping, technical" in html
    accuracy = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))["validation"]
    assert f"<th>accuracy</th><td>{accuracy['accuracy']:.4f}</td>" in html
    assert run.privacy is None and "differential privacy" not in html
