"""`train --overwrite`: the old run stays whole, byte for byte, until the new one is complete."""

from __future__ import annotations

import errno
import hashlib
import math
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

import trustune
from trustune.errors import ArtifactError, TrainingInterrupted
from trustune.progress import Progress


def _snapshot(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _train(data: Path, model: Path, output: Path, **options: Any) -> trustune.Run:
    options = {"epochs": 1, "batch_size": 16, "lr": 1e-3, "measure_latency": False, **options}
    return trustune.finetune(data, model=str(model), output=output, overwrite=True, **options)


@pytest.fixture
def old_run(tmp_path: Path, tiny_run: Path) -> Path:
    run = tmp_path / "runs" / "tiny"
    shutil.copytree(tiny_run, run)
    return run


def _enospc(*args: object, **kwargs: object) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("where", ["checkpoint", "run writer"])
def test_a_full_disk_during_overwrite_leaves_the_old_run_byte_identical(
    old_run: Path, tiny_model: Path, demo_files: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch, where: str,
) -> None:  # fmt: skip
    before = _snapshot(old_run)
    if where == "checkpoint":
        monkeypatch.setattr("trustune.train.checkpoint.save_file", _enospc)
        message = r"could not write .*checkpoints.*: No space left on device"
    else:  # the model is written, then the records fail
        monkeypatch.setattr("trustune.records.atomic_write_json", _enospc)
        message = rf"could not write the run {old_run}: No space left on device; the previous run"
    with pytest.raises(ArtifactError, match=message):
        _train(demo_files[0], tiny_model, old_run)
    assert _snapshot(old_run) == before
    assert [p.name for p in old_run.parent.iterdir()] == ["tiny"]  # no staging folder stays
    trustune.load(old_run)


def test_ctrl_c_during_overwrite_keeps_the_old_run(
    old_run: Path, tiny_model: Path, demo_files: tuple[Path, Path]
) -> None:
    class StopAt(Progress):
        def advance(self, task: str, amount: int = 1, **fields: Any) -> None:
            raise KeyboardInterrupt

    before = _snapshot(old_run)
    with pytest.raises(TrainingInterrupted, match=rf"{old_run} is unchanged"):
        _train(demo_files[0], tiny_model, old_run, progress=StopAt())
    assert _snapshot(old_run) == before
    assert [p.name for p in old_run.parent.iterdir()] == ["tiny"]


def test_a_complete_overwrite_replaces_the_whole_run(
    old_run: Path, tiny_model: Path, demo_files: tuple[Path, Path]
) -> None:
    (old_run / "notes.txt").write_text("belongs to the old run", encoding="utf-8")
    old_weights = load_file(str(old_run / "model" / "model.safetensors"))
    run = _train(demo_files[0], tiny_model, old_run, epochs=1, lr=5e-4)
    assert not (old_run / "notes.txt").exists()
    assert not (old_run / "checkpoints").exists()  # a complete run keeps none
    final = load_file(str(old_run / "model" / "model.safetensors"))
    assert any(not torch.equal(final[k], old_weights[k]) for k in final)
    # one epoch of batches of 16 over the rows left after the (sized) validation split
    assert run.manifest.data.train is not None and run.manifest.data.train.rows is not None
    assert run.manifest.training.steps == math.ceil(run.manifest.data.train.rows / 16)
    assert [p.name for p in old_run.parent.iterdir()] == ["tiny"]


def test_overwrite_refuses_a_folder_that_is_no_run(
    tmp_path: Path, tiny_model: Path, demo_files: tuple[Path, Path]
) -> None:
    folder = tmp_path / "documents"
    folder.mkdir()
    (folder / "thesis.tex").write_text("precious", encoding="utf-8")
    with pytest.raises(ArtifactError, match=r"is not a trustune run .*--overwrite replaces runs"):
        _train(demo_files[0], tiny_model, folder)
    assert [p.name for p in folder.iterdir()] == ["thesis.tex"]


@pytest.fixture
def small_disk(tmp_path: Path, tiny_run: Path) -> Iterator[Path]:
    """A real tmpfs with room for the tiny run plus 8 MiB: not for a second run beside it."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    pages = sum(-(-p.stat().st_size // 4096) for p in tiny_run.rglob("*") if p.is_file())
    size_kib = pages * 4 + 8 * 1024  # one checkpoint of the new run needs 16 MB
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(mount)],
        capture_output=True, timeout=30,
    )  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip(f"mount is not permitted here: {mounted.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], capture_output=True, timeout=30)


def test_a_really_full_disk_during_overwrite(
    small_disk: Path, tiny_run: Path, tiny_model: Path, demo_files: tuple[Path, Path]
) -> None:
    run = small_disk / "tiny"
    shutil.copytree(tiny_run, run)
    before = _snapshot(run)
    with pytest.raises(ArtifactError, match="No space left on device"):
        _train(demo_files[0], tiny_model, run)
    assert _snapshot(run) == before
    assert [p.name for p in small_disk.iterdir()] == ["tiny"]
    trustune.load(run)
