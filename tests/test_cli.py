"""The real `trustune` command, run as a subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ENV = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}


def trustune(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trustune.cli.main", *map(str, args)],
        capture_output=True, text=True, env=ENV, cwd=cwd, timeout=600,
    )  # fmt: skip


def _error_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def test_help_on_every_command() -> None:
    for command in ("demo", "train", "evaluate", "predict", "report"):
        result = trustune(command, "--help")
        assert result.returncode == 0
        assert "usage: trustune " + command in result.stdout


def test_train_predict_evaluate(
    tmp_path: Path, tiny_model: Path, demo_files: tuple[Path, Path]
) -> None:
    train, test = demo_files
    config = tmp_path / "run.yaml"
    config.write_text("train:\n  epochs: 1\n  batch_size: 16\n  lr: 0.001\n", encoding="utf-8")
    run = tmp_path / "run"
    result = trustune("train", "--data", train, "--model", tiny_model, "--config", config,
                      "--output", run, "--quiet", "--no-speed")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "run written to" in result.stdout
    from trustune.cli.prune import format_size
    from trustune.train.checkpoint import folder_size

    assert f"run written to {run}/ ({format_size(folder_size(run))})" in result.stdout
    assert not (run / "checkpoints").exists()  # a finished run is not resumed
    assert "majority-class baseline (always the most frequent label): 0." in result.stdout
    manifest = json.loads((run / "trustune.json").read_text(encoding="utf-8"))
    assert (
        manifest["config"]["train"]["epochs"] == 1
        and manifest["config"]["train"]["batch_size"] == 16
    )

    result = trustune(
        "predict", run, "--text", "refund my card", "--text", "the app crashes", "--json"
    )
    assert result.returncode == 0, result.stderr
    predictions = json.loads(result.stdout)
    assert [p["text"] for p in predictions] == ["refund my card", "the app crashes"]
    assert all(p["prediction"] in manifest["labels"] for p in predictions)

    out = tmp_path / "pred.jsonl"
    result = trustune("predict", run, "--input", test, "--output", out, "--quiet")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 32 and {"text", "label", "prediction", "prediction_score"} <= set(rows[0])
    csv_out = tmp_path / "pred.csv"
    assert trustune("predict", run, "--input", test, "--output", csv_out, "--quiet").returncode == 0
    header = csv_out.read_text(encoding="utf-8").splitlines()[0]
    assert header == (
        "text,label,prediction,prediction_score,prediction_prob_account,prediction_prob_billing,"
        "prediction_prob_shipping,prediction_prob_technical"
    )

    result = trustune("evaluate", run, "--data", test, "--json", "--no-speed")
    assert result.returncode == 0, result.stderr
    evaluation = json.loads(result.stdout)
    assert evaluation["data"]["rows"] == 32
    metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["evaluations"][test.stem]["accuracy"] == evaluation["accuracy"]
    assert test.stem in json.loads((run / "trustune.json").read_text(encoding="utf-8"))["metrics"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--data", "{tmp}/missing.csv"], "data file {tmp}/missing.csv does not exist"),
        (["train", "--data", "{tmp}/data.xml"], "unknown data format '.xml'"),
        (
            ["train", "--data", "{tmp}/data.csv", "--text-column", "body"],
            "no text column 'body'; the columns are ['text', 'label']",
        ),
        (["train", "--data", "{tmp}/one.csv"], "one class only"),
        (
            ["train", "--data", "{tmp}/data.csv", "--model", "{tmp}"],
            "is not a Hugging Face checkpoint folder",
        ),
        (["train", "--data", "{tmp}/data.csv", "--epochs", "0"], "train.epochs: 0 is not allowed"),
        (
            ["train", "--data", "{tmp}/data.csv", "--output", "{tmp}", "--model", "{tmp}"],
            "already exists; pass --overwrite",
        ),
        (["predict", "{tmp}", "--text", "x"], "is not a trustune run"),
        (["predict", "{tmp}/nope", "--text", "x"], "no run folder"),
    ],
)
def test_bad_input_one_line_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "data.csv").write_text("text,label\na,x\nb,y\n", encoding="utf-8")
    (tmp_path / "one.csv").write_text("text,label\na,x\nb,x\n", encoding="utf-8")
    (tmp_path / "data.xml").write_text("<x/>", encoding="utf-8")
    result = trustune(*(a.format(tmp=tmp_path) for a in args), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert message.format(tmp=tmp_path) in _error_line(result)


def test_debug_shows_traceback(tmp_path: Path) -> None:
    result = trustune("--debug", "train", "--data", tmp_path / "missing.csv")
    assert result.returncode != 0
    assert "Traceback" in result.stderr


def test_ctrl_c_saves_checkpoint_and_resume_finishes(tmp_path: Path, tiny_model: Path) -> None:
    rows = "".join(
        f"ticket number {i} about {'billing' if i % 2 else 'shipping'} matters,{'b' if i % 2 else 's'}\n"
        for i in range(3000)
    )
    data = tmp_path / "big.csv"
    data.write_text("text,label\n" + rows, encoding="utf-8")
    run = tmp_path / "run"
    command = [sys.executable, "-m", "trustune.cli.main", "train", "--data", str(data), "--model", str(tiny_model),
               "--output", str(run), "--epochs", "2", "--batch-size", "8", "--evaluate-every", "20", "--quiet", "--no-speed"]  # fmt: skip
    process = subprocess.Popen(
        command, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 300
    while (
        not list((run / "checkpoints").glob("step-*"))
        and time.monotonic() < deadline
        and process.poll() is None
    ):
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 130, stderr
    assert "checkpoint saved. Continue with: trustune train --output" in stderr
    assert not (run / "model").exists()
    refused = trustune("train", "--output", run, "--resume", "--epochs", "9")
    assert refused.returncode == 2
    assert (
        "--resume continues the configuration saved in the checkpoint; drop --epochs"
        in _error_line(refused)
    )
    result = trustune("train", "--output", run, "--resume", "--quiet", "--no-speed")
    assert result.returncode == 0, result.stderr
    manifest = json.loads((run / "trustune.json").read_text(encoding="utf-8"))
    assert manifest["training"]["epochs_completed"] == 2 or manifest["training"]["stopped_early"]
