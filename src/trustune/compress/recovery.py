"""The short fine-tune after ``prune:`` or ``distill:`` cut a model, and the data it may use.

**Data policy.** The guard's rows (``--data``, ``job.validation``) are never trained on, nor
used to choose what to cut: a model fitted to the rows it is then measured on would pass the
guard with an optimistic figure. Recovery uses

- the parent's training file (``manifest.data.train``), only when it is still there and its
  SHA-256 is the one the manifest recorded (a changed file is not what the parent learned
  from). Rows that also appear in ``--data`` (the same text and second text) are left out;
- the texts of ``--unlabeled FILE`` (a table with the parent's text column(s), or a ``.txt``
  file with one text per line), which need no labels: the student learns the parent's outputs
  on them.

**Differential privacy.** Training on a DP parent's private training file again, without
DP-SGD, would spend privacy that the manifest's ε does not account for. So ``prune:`` and
``distill:`` of a DP run refuse unless ``--unlabeled`` names public texts, and then train on
those texts only and on the parent's outputs only: a function of the DP model and of public
data is post-processing, which keeps the parent's (ε, δ).

**Loss.** On every row the parent's outputs are soft targets: the KL divergence at
temperature 2 (times T², Hinton et al. 2015) for classification, the squared difference in
standardised units for regression. Labeled rows add the task's own loss (``task.saved_loss``:
the loss of the saved model's outputs, which for regression are already in the target's unit),
weighted equally. Pruning recovers from the unpruned parent the same way: the target is the
function the parent computed, not only its labels.

**Length.** AdamW (weight decay 0.01), batches of 32, 6% linear warm-up then linear decay, the
gradient clipped to norm 1, bf16 autocast where the hardware multiplies bf16 natively (the
weights stay fp32, as in training), seeded with ``--seed``. The learning rate is the parent's
(``train.lr``) when it trained every weight, else 5e-5. Without ``--recovery-epochs`` the
method's default number of epochs (prune 1, distill 3) is stretched to at least 200 optimizer
steps, at most 10 epochs, so that a small training file still gets a real fine-tune; an
explicit ``--recovery-epochs N`` is taken as it is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeGuard

from trustune.compress.methods import Job, torch_parent
from trustune.errors import ColumnError, ConfigError, DataError, PrivacyError
from trustune.messages import shown

if TYPE_CHECKING:
    import torch

    from trustune.manifest import Manifest
    from trustune.tasks import Task
    from trustune.tasks.regression import TextRegression

__all__ = [
    "BATCH_SIZE",
    "MIN_STEPS",
    "TEMPERATURE",
    "RecoveryData",
    "check_recovery_data",
    "planned_epochs",
    "recover",
    "recovery_data",
]

BATCH_SIZE = 32
TEMPERATURE = 2.0
MIN_STEPS = 200  # a default-length recovery runs at least this many optimizer steps ...
MAX_AUTO_EPOCHS = 10  # ... unless that takes more passes than this over the data
WARMUP_SHARE = 0.06
DEFAULT_LR = 5e-5
SOFT_WEIGHT = 0.5  # labeled rows: 0.5 * (parent's outputs) + 0.5 * (task loss on the label)


@dataclass
class RecoveryData:
    """The rows recovery trains on: texts (and second texts), task-encoded targets where the row
    is labeled (a placeholder where not), where they came from, and what to tell the user."""

    texts: list[str]
    pairs: list[str] | None
    targets: list[Any]
    labeled: list[bool]
    sources: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.texts)


def _is_private(manifest: Manifest) -> bool:
    return manifest.privacy is not None and manifest.privacy.dp


def _training_file(job: Job) -> tuple[Path | None, str]:
    """The parent's training file when it is usable, else None and why not."""
    from trustune.artifact import file_sha256

    part = job.parent.manifest.data.train
    if part is None or not part.path:
        return None, "is not recorded in its manifest"
    path = Path(part.path)
    if not path.is_file():
        return None, f"({shown(str(path))}) is gone"
    if not part.sha256 or file_sha256(path) != part.sha256:
        return None, f"({shown(str(path))}) has changed since training (its SHA-256 differs)"
    return path, ""


def check_recovery_data(job: Job, method: str) -> tuple[Path | None, str]:
    """Refuse early (before any work) where the data policy leaves nothing to train on; returns
    the usable training file (None for a DP parent, or where it is gone) and why not."""
    manifest = job.parent.manifest
    unlabeled = job.settings.unlabeled
    if _is_private(manifest) and unlabeled is None:
        assert manifest.privacy is not None
        eps = manifest.privacy.epsilon
        spent = f" (ε={eps:g})" if isinstance(eps, int | float) else ""
        raise PrivacyError(
            f"--method {method}: {job.parent.run_dir} was trained with differential "
            f"privacy{spent}, and fine-tuning on its training data again without DP would void "
            "that guarantee; pass --unlabeled FILE with public texts (the result then learns "
            "only the parent's outputs on them, which keeps ε)"
        )
    if unlabeled is not None and not Path(unlabeled).is_file():
        raise ConfigError(f"--unlabeled {shown(unlabeled)}: no such file")
    if _is_private(manifest):
        return None, "is private"
    path, why = _training_file(job)
    if path is None and unlabeled is None:
        raise ConfigError(
            f"--method {method} fine-tunes the cut model, and the training file of "
            f"{job.parent.run_dir} {why}; pass --unlabeled FILE with texts like the "
            "training data (the parent's outputs on them are the targets)"
        )
    return path, why


def recovery_data(job: Job, method: str) -> RecoveryData:
    """The rows the data policy (see the module docstring) allows, read and encoded."""
    path, why = check_recovery_data(job, method)
    parent = job.parent
    private = _is_private(parent.manifest)
    texts: list[str] = []
    pairs: list[str] | None = [] if parent.pairs else None
    targets: list[Any] = []
    labeled: list[bool] = []
    sources: list[dict[str, Any]] = []
    notes: list[str] = []
    left_out = 0
    placeholder: Any = 0.0 if _is_regression(parent.task) else 0
    if path is not None:
        rows, skipped = _training_rows(job, path)
        texts += rows.texts
        if pairs is not None:
            pairs += rows.pairs or []
        targets += rows.labels
        labeled += [True] * len(rows.texts)
        sources.append(
            {"file": str(path), "sha256": rows.info.get("sha256"), "rows": len(rows.texts),
             "labels": True, "left_out_as_guard_rows": skipped}
        )  # fmt: skip
        left_out += skipped
    elif not private:
        notes.append(
            f"the training file of {parent.run_dir} {why}: recovery learns the parent's "
            "outputs on --unlabeled only"
        )
    if job.settings.unlabeled is not None:
        unlabeled = Path(job.settings.unlabeled)
        extra_texts, extra_pairs, digest = _unlabeled_rows(job, unlabeled)
        keep = _outside_guard(job, extra_texts, extra_pairs)
        if not keep.any():
            raise ConfigError(
                f"every text of --unlabeled {shown(str(unlabeled))} is also in --data; give "
                "texts the result is not measured on"
            )
        extra_texts = [t for t, k in zip(extra_texts, keep, strict=True) if k]
        texts += extra_texts
        if pairs is not None and extra_pairs is not None:
            pairs += [t for t, k in zip(extra_pairs, keep, strict=True) if k]
        targets += [placeholder] * len(extra_texts)
        labeled += [False] * len(extra_texts)
        skipped = int((~keep).sum())
        sources.append(
            {"file": str(unlabeled), "sha256": digest, "rows": len(extra_texts),
             "labels": False, "left_out_as_guard_rows": skipped}
        )  # fmt: skip
        left_out += skipped
    if left_out:
        notes.append(
            f"recovery left out {left_out} row(s) that are also in --data, so that the guard "
            "measures rows the model was not fitted to"
        )
    if private:
        notes.append(
            "the parent is differentially private: recovery trained only on --unlabeled texts "
            "and the parent's outputs (post-processing; ε stays the parent's)"
        )
    if parent.redact_pii:  # the parent was trained (and predicts) on redacted texts
        from trustune.privacy.redact import redact_texts

        texts = redact_texts(texts).texts
        pairs = None if pairs is None else redact_texts(pairs).texts
    return RecoveryData(texts, pairs, targets, labeled, sources, notes)


def _outside_guard(job: Job, texts: list[str], pairs: list[str] | None) -> Any:
    """Mask of the rows that are not rows of the guard's data (the same text and second text)."""
    import numpy as np

    def rows(first: list[str], second: list[str] | None) -> list[tuple[str, str | None]]:
        seconds: list[str | None] = list(second) if second is not None else [None] * len(first)
        return list(zip(first, seconds, strict=True))

    guard_keys = set(rows(job.validation.texts, job.validation.pairs))
    keys = rows(texts, pairs)
    return np.fromiter((key not in guard_keys for key in keys), dtype=bool, count=len(texts))


def _training_rows(job: Job, path: Path) -> tuple[Any, int]:
    """The training file read with the parent's columns and targets; rows also in the guard's
    data are dropped (returns the rows and how many were dropped)."""
    import numpy as np

    from trustune.config import DEFAULT_MAX_CHARS
    from trustune.data import read_labeled

    parent = job.parent
    manifest = parent.manifest
    rows, _ = read_labeled(
        path, text_column=manifest.text_column, label_column=manifest.label_column,
        pair_column=manifest.text_pair_column, pairs=parent.pairs,
        skip_bad_rows=bool(manifest.setting("data", "skip_bad_rows", False)),
        max_chars=int(manifest.setting("data", "max_chars", DEFAULT_MAX_CHARS)),
    )  # fmt: skip
    parent.task.encode(rows, source=str(path))
    keep = _outside_guard(job, rows.texts, rows.pairs)
    if keep.all():
        return rows, 0
    if not keep.any():
        raise ConfigError(
            f"every row of the training file {shown(str(path))} is also in --data; measure the "
            "result on rows it was not trained on, or pass --unlabeled FILE"
        )
    kept = rows.subset(np.flatnonzero(keep))
    kept.labels = [rows.labels[i] for i in np.flatnonzero(keep)]
    return kept, int((~keep).sum())


def _unlabeled_rows(job: Job, path: Path) -> tuple[list[str], list[str] | None, str]:
    """``--unlabeled``: its texts (and second texts for a pair run) and its SHA-256."""
    from trustune.artifact import file_sha256
    from trustune.config import DEFAULT_MAX_CHARS
    from trustune.data import load_inputs

    parent = job.parent
    manifest = parent.manifest
    max_chars = int(manifest.setting("data", "max_chars", DEFAULT_MAX_CHARS))
    digest = file_sha256(path)
    if path.suffix.lower() == ".txt":
        if parent.pairs:
            raise ConfigError(
                f"--unlabeled {shown(str(path))}: {parent.run_dir} takes text pairs; give a "
                f"table with the columns {shown(manifest.text_column)} and "
                f"{shown(manifest.text_pair_column)}"
            )
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise DataError(f"--unlabeled {shown(str(path))} cannot be read: {e}") from None
        texts = [line.strip()[:max_chars] for line in lines if line.strip()]
        if not texts:
            raise DataError(f"--unlabeled {shown(str(path))} holds no texts")
        return texts, None, digest
    attempts = [(manifest.text_column, manifest.text_pair_column), (None, None)]
    for text_column, pair_column in attempts:
        try:
            texts, pairs, _ = load_inputs(
                path, text_column=text_column, pair_column=pair_column, pairs=parent.pairs,
                skip_bad_rows=True, max_chars=max_chars,
            )  # fmt: skip
        except ColumnError:
            continue
        if not texts:
            raise DataError(f"--unlabeled {shown(str(path))} holds no texts")
        return texts, pairs, digest
    wanted = " and ".join(
        shown(c) for c in (manifest.text_column, manifest.text_pair_column) if c is not None
    )
    raise ConfigError(
        f"--unlabeled {shown(str(path))}: cannot tell which column holds the texts; name it "
        f"{wanted or 'text'} as in the parent's training data (or give a .txt file, one text "
        "per line)"
    )


def planned_epochs(explicit: int | None, default: int, steps_per_epoch: int) -> int:
    """``--recovery-epochs`` as given, else ``default`` stretched to at least ``MIN_STEPS``
    steps (at most ``MAX_AUTO_EPOCHS`` passes)."""
    if explicit is not None:
        return explicit
    wanted = math.ceil(MIN_STEPS / max(1, steps_per_epoch))
    return max(default, min(MAX_AUTO_EPOCHS, wanted))


def _is_regression(task: Task) -> TypeGuard[TextRegression]:
    from trustune.tasks.regression import TextRegression

    return isinstance(task, TextRegression)


def _learning_rate(manifest: Manifest) -> float:
    lr = manifest.setting("train", "lr")
    trained_all = manifest.setting("train", "trainable", "all") == "all"
    if trained_all and isinstance(lr, int | float) and not isinstance(lr, bool) and 0 < lr < 1:
        return float(lr)
    return DEFAULT_LR  # bitfit runs use rates far too high for training every weight


def _batch_loss(
    task: Task, logits: torch.Tensor, soft: torch.Tensor, targets: torch.Tensor,
    labeled: torch.Tensor,
) -> torch.Tensor:  # fmt: skip
    """The mean over the batch of the soft-target loss, plus the task loss on labeled rows."""
    import torch
    import torch.nn.functional as F

    if _is_regression(task):
        unit = task.scale.std if task.folded else 1.0
        teacher_loss = ((logits.squeeze(-1) - soft.squeeze(-1)) / unit) ** 2  # (batch,)
    else:
        t = TEMPERATURE
        teacher_loss = F.kl_div(
            F.log_softmax(logits / t, dim=-1), F.log_softmax(soft / t, dim=-1),
            reduction="none", log_target=True,
        ).sum(-1) * (t * t)  # fmt: skip
    hard = task.saved_loss(logits, targets).float()
    mixed = SOFT_WEIGHT * teacher_loss + (1 - SOFT_WEIGHT) * hard
    return torch.where(labeled, mixed, teacher_loss).mean()


def recover(
    job: Job, student: torch.nn.Module, data: RecoveryData, *, method: str, default_epochs: int
) -> dict[str, Any]:
    """Fine-tune ``student`` in place on ``data`` against the parent's outputs; returns what the
    manifest records of it (epochs, steps, learning rate, rows, sources, the last epoch's loss)."""
    import numpy as np
    import torch

    from trustune.config import Precision
    from trustune.encoding import encode_texts
    from trustune.precision import resolve_precision

    parent = job.parent
    teacher = torch_parent(job, method)
    encoded = encode_texts(parent.tokenizer, data.texts, max_length=parent.max_length,
                           pairs=data.pairs)  # fmt: skip
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    soft = _teacher_outputs(teacher, encoded, pad_id=parent.pad_id, device=device)
    regression = _is_regression(parent.task)
    targets = torch.as_tensor(data.targets, dtype=torch.float32 if regression else torch.long)
    labeled = torch.as_tensor(data.labeled, dtype=torch.bool)
    n = len(encoded)
    steps_per_epoch = math.ceil(n / BATCH_SIZE)
    epochs = planned_epochs(job.settings.recovery_epochs, default_epochs, steps_per_epoch)
    total = epochs * steps_per_epoch
    warmup = max(1, round(WARMUP_SHARE * total))
    lr = _learning_rate(parent.manifest)
    # bf16 autocast where the hardware multiplies it natively, as training does (fp32 weights)
    bf16 = resolve_precision(Precision.AUTO, cuda=device.type == "cuda") is Precision.BF16

    def schedule(step: int) -> float:  # linear warm-up, then linear decay to zero
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total - step) / max(1, total - warmup))

    student.to(device).train()
    optimizer = torch.optim.AdamW(student.parameters(), lr=lr, weight_decay=0.01)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    order_rng = np.random.default_rng(job.settings.seed)
    progress = job.progress
    last_epoch: list[float] = []
    if progress is not None:
        progress.start("recover", total=total)
    try:
        cuda = [torch.cuda.current_device()] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda):
            torch.manual_seed(job.settings.seed)  # dropout
            for epoch in range(epochs):
                last_epoch = []
                order = order_rng.permutation(n)
                for start in range(0, n, BATCH_SIZE):
                    idx = order[start : start + BATCH_SIZE].tolist()
                    batch = {
                        k: v.to(device) for k, v in encoded.batch(idx, pad_id=parent.pad_id).items()
                    }
                    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                        logits = student(**batch).logits
                    logits = logits.float()  # (batch, outputs)
                    loss = _batch_loss(
                        parent.task, logits, soft[idx].to(device), targets[idx].to(device),
                        labeled[idx].to(device),
                    )  # fmt: skip
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
                    optimizer.step()
                    scheduler.step()
                    last_epoch.append(float(loss.detach()))
                    if progress is not None:
                        progress.advance("recover", 1, loss=last_epoch[-1], epoch=epoch + 1)
    finally:
        if progress is not None:
            progress.end("recover")
        student.to("cpu").eval()
    return {
        "epochs": epochs, "steps": total, "batch_size": BATCH_SIZE, "lr": lr,
        "schedule": f"AdamW, {WARMUP_SHARE:.0%} linear warm-up, linear decay",
        "loss": _loss_name(regression), "rows": n,
        "labeled_rows": int(labeled.sum()), "sources": data.sources,
        "final_epoch_loss": round(float(np.mean(last_epoch)), 6) if last_epoch else None,
        "device": device.type, "precision": "bf16 autocast" if bf16 else "fp32",
    }  # fmt: skip


def _teacher_outputs(teacher: Any, encoded: Any, *, pad_id: int, device: Any) -> torch.Tensor:
    """The parent's outputs on every recovery row, once, in fp32 (the soft targets)."""
    import torch

    from trustune.inference import compute_logits

    home = next(teacher.parameters()).device
    try:
        teacher.to(device)
        return torch.as_tensor(
            compute_logits(teacher, encoded, batch_size=64, pad_id=pad_id, device=device)
        )  # (rows, outputs)
    finally:
        teacher.to(home)  # the guard measures the parent where it was loaded


def _loss_name(regression: bool) -> str:
    if regression:
        return (
            f"{SOFT_WEIGHT:g} x squared difference to the parent's output (standardised) + "
            f"{1 - SOFT_WEIGHT:g} x the task loss on labeled rows; the first only on unlabeled"
        )
    return (
        f"{SOFT_WEIGHT:g} x KL to the parent's softmax at T={TEMPERATURE:g} (x T²) + "
        f"{1 - SOFT_WEIGHT:g} x cross-entropy on labeled rows; the first only on unlabeled"
    )
