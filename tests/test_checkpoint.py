from __future__ import annotations

import errno
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from trustune.errors import ArtifactError
from trustune.train import checkpoint as ckpt
from trustune.train.checkpoint import (
    TrainingState,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)


def _parts() -> tuple[torch.nn.Module, torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 / (1 + step))
    return model, optimizer, scheduler


def _step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: object) -> None:
    loss = model(torch.randn(3, 4)).pow(2).sum()
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    scheduler.step()  # type: ignore[attr-defined]


def test_round_trip_restores_everything(tmp_path: Path) -> None:
    model, optimizer, scheduler = _parts()
    for _ in range(3):
        _step(model, optimizer, scheduler)
    state = TrainingState(epoch=1, batches_done=2, step=3, history=[{"step": 3}])
    path = save_checkpoint(tmp_path, model=model, optimizer=optimizer, scheduler=scheduler, state=state,
                           run_info={"data": "x"}, keep=2)  # fmt: skip
    expected_draws = (torch.rand(2).tolist(), np.random.rand(), random.random())
    reference_model, reference_opt, reference_sched = model, optimizer, scheduler
    model2, optimizer2, scheduler2 = _parts()
    restored, info = load_checkpoint(path, model=model2, optimizer=optimizer2, scheduler=scheduler2)
    assert (torch.rand(2).tolist(), np.random.rand(), random.random()) == expected_draws
    assert info == {"data": "x"}
    assert restored.step == 3 and restored.history == [{"step": 3}]
    assert scheduler2.get_last_lr() == reference_sched.get_last_lr()
    for a, b in zip(reference_model.parameters(), model2.parameters(), strict=True):
        assert torch.equal(a, b)
    torch.manual_seed(1)
    _step(reference_model, reference_opt, reference_sched)
    torch.manual_seed(1)
    _step(model2, optimizer2, scheduler2)
    for a, b in zip(reference_model.parameters(), model2.parameters(), strict=True):
        assert torch.equal(a, b)


def test_keeps_last_k(tmp_path: Path) -> None:
    model, optimizer, scheduler = _parts()
    for step in range(1, 5):
        save_checkpoint(tmp_path, model=model, optimizer=optimizer, scheduler=scheduler,
                        state=TrainingState(step=step), run_info={}, keep=2)  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-000003", "step-000004"]


def test_disk_full_keeps_previous_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, optimizer, scheduler = _parts()
    save_checkpoint(tmp_path, model=model, optimizer=optimizer, scheduler=scheduler,
                    state=TrainingState(step=1), run_info={}, keep=2)  # fmt: skip

    def full_disk(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ckpt, "save_file", full_disk)
    with pytest.raises(
        ArtifactError,
        match="No space left on device; the previous checkpoint step-000001 is intact",
    ):
        save_checkpoint(tmp_path, model=model, optimizer=optimizer, scheduler=scheduler,
                        state=TrainingState(step=2), run_info={}, keep=2)  # fmt: skip
    assert [p.name for p in tmp_path.iterdir()] == ["step-000001"]
    assert latest_checkpoint(tmp_path) == tmp_path / "step-000001"


def _save(folder: Path, model: torch.nn.Module) -> Path:
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    return save_checkpoint(folder, model=model, optimizer=optimizer, scheduler=scheduler,
                           state=TrainingState(step=1), run_info={}, keep=2)  # fmt: skip


def _load(path: Path, model: torch.nn.Module) -> None:
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    load_checkpoint(path, model=model, optimizer=optimizer, scheduler=scheduler)


def test_a_checkpoint_of_another_model_is_refused(tmp_path: Path) -> None:
    from trustune.errors import CheckpointError

    path = _save(tmp_path, torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 2)))
    deeper = torch.nn.Sequential(
        torch.nn.Linear(4, 8), torch.nn.Linear(8, 2), torch.nn.Linear(2, 2)
    )
    with pytest.raises(CheckpointError, match=r"missing 2 tensors \(2\.bias, 2\.weight\); it was"):
        _load(path, deeper)
    shallower = torch.nn.Sequential(torch.nn.Linear(4, 8))
    with pytest.raises(CheckpointError, match=r"2 unknown \(1\.bias, 1\.weight\)"):
        _load(path, shallower)


class _Tied(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = torch.nn.Linear(4, 4, bias=False)
        self.head = torch.nn.Linear(4, 4, bias=False)
        self.head.weight = self.embed.weight  # one tensor, two names


def test_only_tied_aliases_may_be_missing(tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    from trustune.errors import CheckpointError
    from trustune.models.weights import load_weights, tied_aliases

    model = _Tied()
    assert tied_aliases(model) == {"head.weight": "embed.weight"}
    weights = tmp_path / "w.safetensors"
    ckpt.save_weights(model, weights)
    state = load_file(str(weights))
    save_file({"embed.weight": state["embed.weight"]}, str(weights))
    fresh = _Tied()
    load_weights(fresh, load_file(str(weights)), where="w")  # the alias follows its tensor
    assert torch.equal(fresh.head.weight, model.embed.weight)
    with pytest.raises(CheckpointError, match=r"missing 2 tensors \(embed.weight, head.weight\)"):
        load_weights(_Tied(), {}, where="w")


def test_ctrl_c_and_a_real_full_disk_leave_no_partial_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from safetensors import SafetensorError

    model, optimizer, scheduler = _parts()
    save_checkpoint(tmp_path, model=model, optimizer=optimizer, scheduler=scheduler,
                    state=TrainingState(step=1), run_info={}, keep=2)  # fmt: skip

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    def full(*args: object, **kwargs: object) -> None:  # what safetensors raises on ENOSPC
        raise SafetensorError(
            "Error while serializing: I/O error: No space left on device (os error 28)"
        )

    monkeypatch.setattr(ckpt, "save_file", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path, model=model, optimizer=optimizer, scheduler=scheduler,
                        state=TrainingState(step=2), run_info={}, keep=2)  # fmt: skip
    assert [p.name for p in tmp_path.iterdir()] == ["step-000001"]
    monkeypatch.setattr(ckpt, "save_file", full)
    with pytest.raises(ArtifactError, match="No space left on device; the previous checkpoint"):
        save_checkpoint(tmp_path, model=model, optimizer=optimizer, scheduler=scheduler,
                        state=TrainingState(step=2), run_info={}, keep=2)  # fmt: skip
    with pytest.raises(ArtifactError, match=r"best/model.safetensors: No space left on device"):
        ckpt.save_weights_atomic(model, tmp_path / "best" / "model.safetensors")
    assert sorted(p.name for p in tmp_path.rglob("*")) == [
        "best", "model.safetensors", "optimizer.safetensors", "state.json", "step-000001"
    ]  # fmt: skip
