"""Checkpoints leave a run once it is written; `trustune prune` removes those of older runs."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from trustune.cli.main import main
from trustune.cli.prune import format_size
from trustune.security import (
    generate_signing_key,
    read_public_key,
    read_signing_key,
    sign_run,
    verify_run,
    write_signing_key,
)
from trustune.train.checkpoint import (
    TrainingState,
    folder_size,
    save_checkpoint,
    save_weights_atomic,
)

ENV = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}


def _cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trustune.cli.main", *map(str, args)],
        capture_output=True, text=True, env=ENV, timeout=300,
    )  # fmt: skip


def _error_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def _snapshot(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _add_checkpoints(run: Path) -> int:
    """What a run written before checkpoints were removed held: two step checkpoints (weights,
    optimizer state) and best/; returns their size."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.Linear(64, 4))
    optimizer = torch.optim.AdamW(model.parameters())
    model(torch.randn(2, 64)).sum().backward()
    optimizer.step()
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    for step in (7, 14):
        save_checkpoint(run / "checkpoints", model=model, optimizer=optimizer, scheduler=scheduler,
                        state=TrainingState(step=step), run_info={}, keep=2)  # fmt: skip
    save_weights_atomic(model, run / "checkpoints" / "best" / "model.safetensors")
    return folder_size(run / "checkpoints")


def test_a_finished_run_keeps_no_checkpoints(tiny_run: Path) -> None:
    """`trustune.finetune` and `trustune train` (tests/test_cli.py) write the run the same way."""
    assert not (tiny_run / "checkpoints").exists()
    assert not list(tiny_run.rglob("optimizer.safetensors"))
    model_size = folder_size(tiny_run / "model")
    assert model_size < folder_size(tiny_run) < model_size + 3_000_000  # the records: a few kB


def test_prune_frees_the_checkpoints_of_an_older_run(
    tmp_path: Path, tiny_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    before = _snapshot(run)
    size = _add_checkpoints(run)
    result = _cli("prune", run)
    assert result.returncode == 0, result.stderr
    assert size > 100_000  # weights and two optimizer moments, twice, and best/
    assert result.stdout.strip() == (
        f"pruned {run}: freed {format_size(size)}, the run now takes "
        f"{format_size(folder_size(run))}"
    )
    assert _snapshot(run) == before  # the model and records untouched
    assert main(["prune", str(run)]) == 0
    assert "has no checkpoints; nothing to prune" in capsys.readouterr().out


def test_prune_refuses_an_unfinished_run_unless_forced(tmp_path: Path) -> None:
    run = tmp_path / "unfinished"
    _add_checkpoints(run)
    before = _snapshot(run)
    result = _cli("prune", run)
    assert result.returncode == 2
    assert _error_line(result) == (
        f"error: {run} is an unfinished run (no trustune.json): its checkpoints are what "
        f"`trustune train --output {run} --resume` continues from; pass --force to delete them "
        "anyway"
    )
    assert _snapshot(run) == before
    assert main(["prune", str(run), "--force"]) == 0
    assert not (run / "checkpoints").exists()


def test_a_signed_run_stays_verifiable(
    tmp_path: Path, tiny_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    _add_checkpoints(run)
    private, public = write_signing_key(tmp_path / "signer", generate_signing_key())
    sign_run(run, read_signing_key(private))  # the signature lists the checkpoint files
    before = _snapshot(run)

    assert main(["prune", str(run)]) == 2
    assert "is signed and its signature covers checkpoints/; pass --signing-key FILE" in (
        capsys.readouterr().err
    )
    assert _snapshot(run) == before
    assert main(["verify", str(run), "--public-key", str(public)]) == 0

    assert main(["prune", str(run), "--signing-key", str(private)]) == 0
    assert "signed again as version 2" in capsys.readouterr().out
    assert not (run / "checkpoints").exists()
    assert main(["verify", str(run), "--public-key", str(public)]) == 0
    assert verify_run(run, read_public_key(public)).version == 2
    assert {n: h for n, h in _snapshot(run).items() if n.startswith("model/")} == {
        n: h for n, h in before.items() if n.startswith("model/")
    }
