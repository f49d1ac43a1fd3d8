"""``distill:LAYERS``: a student with LAYERS of the teacher's encoder layers, trained on its outputs.

The student starts as the teacher (the parent run) with only LAYERS of its encoder layers,
evenly spaced from the first to the last (``round(linspace(0, N - 1, LAYERS))``: for 12 -> 6
that is layers 0, 2, 4, 7, 9 and 11, the layers DistilBERT's students were initialised from;
``distill:1`` keeps the first layer, the one whose inputs are the embeddings it was trained
on). Embeddings, pooler and head are copied, ``config.num_hidden_layers`` is LAYERS, so the
result is a plain transformers checkpoint with fewer layers: about LAYERS / N of the encoder's
time and of its parameters (the embeddings stay).

It is then trained on the teacher's soft targets (KL at temperature 2 for classification, the
squared difference of outputs for regression) plus the task's loss on labeled rows, for 3
epochs by default (stretched to at least 200 steps on a small training file; ``--recovery-
epochs`` sets it exactly). A student has lost whole layers, not a share of neurons, so it needs
more training than pruning does: task-specific distillation is usually run for a few epochs
(DistilBERT's GLUE students, TinyBERT's task stage). The rows it trains on follow the data policy
of :mod:`trustune.compress.recovery`: never the guard's ``--data``; a DP parent only on
``--unlabeled`` public texts and the teacher's outputs.
"""

from __future__ import annotations

import copy
from typing import Any

from trustune.compress.methods import (
    Compressed,
    Job,
    Method,
    register_method,
    save_model_parts,
    torch_parent,
)
from trustune.compress.recovery import TEMPERATURE, check_recovery_data, recover, recovery_data
from trustune.errors import ConfigError

__all__ = ["DistillMethod", "encoder_layers", "kept_layers", "student_layers"]

RECOVERY_EPOCHS = 3
# where BERT-style models keep their stack of encoder layers (an nn.ModuleList)
LAYER_LISTS = ("encoder.layer", "transformer.layer")


def student_layers(job: Job) -> int:
    """``distill:LAYERS`` as a whole number >= 1."""
    text = (job.spec.argument or "").strip()
    try:
        layers = int(text)
    except ValueError:
        raise ConfigError(
            f"--method {job.spec}: LAYERS must be a whole number of the teacher's encoder "
            "layers to keep, e.g. distill:3"
        ) from None
    if layers < 1:
        raise ConfigError(
            f"--method {job.spec}: the student needs at least 1 layer, e.g. distill:3"
        )
    return layers


def encoder_layers(model: Any) -> tuple[str, Any]:
    """The name and the module list of the model's encoder layers; refused where not found."""
    import torch

    count = getattr(model.config, "num_hidden_layers", None)
    found = [
        (name, module)
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.ModuleList)
        and len(module) == count
        and name.endswith(LAYER_LISTS)
    ]
    if len(found) != 1 or isinstance(getattr(model.config, "layer_types", None), list | tuple):
        kind = getattr(model.config, "model_type", type(model).__name__)
        raise ConfigError(
            f"--method distill needs a BERT-style stack of identical encoder layers (BERT, "
            f"RoBERTa, DistilBERT, ELECTRA, DeBERTa, ...), and this {kind} model is not one; "
            "try prune:SPARSITY, int8 or onnx-int8"
        )
    return found[0]


def kept_layers(teacher_layers: int, layers: int) -> list[int]:
    """The teacher's layers the student keeps: evenly spaced, the first and the last included."""
    import numpy as np

    return [int(i) for i in np.linspace(0, teacher_layers - 1, layers).round()]


@register_method
class DistillMethod(Method):
    name = "distill"
    summary = (
        "a student with LAYERS of the teacher's layers (evenly spaced), trained on the "
        "teacher's outputs; loads in plain transformers"
    )
    argument = "LAYERS"

    def check(self, job: Job) -> None:
        layers = student_layers(job)
        teacher = torch_parent(job, str(job.spec))
        encoder_layers(teacher)
        total = int(teacher.config.num_hidden_layers)
        if total < 2:
            raise ConfigError(
                f"--method {job.spec}: the teacher has 1 encoder layer, so no student can have "
                "fewer; try prune:SPARSITY or int8"
            )
        if layers >= total:
            raise ConfigError(
                f"--method {job.spec}: the teacher has {total} encoder layers and the student "
                f"must have fewer, e.g. distill:{max(1, total // 2)}"
            )
        check_recovery_data(job, str(job.spec))

    def apply(self, job: Job) -> Compressed:
        import torch

        method = str(job.spec)
        layers = student_layers(job)
        teacher = torch_parent(job, method)
        total = int(teacher.config.num_hidden_layers)
        kept = kept_layers(total, layers)
        data = recovery_data(job, method)
        student = copy.deepcopy(teacher).float().eval()
        name, stack = encoder_layers(student)
        owner, _, attribute = name.rpartition(".")
        setattr(
            student.get_submodule(owner), attribute, torch.nn.ModuleList(stack[i] for i in kept)
        )
        student.config.num_hidden_layers = layers
        facts = recover(job, student, data, method=method, default_epochs=RECOVERY_EPOCHS)
        student.save_pretrained(job.model_dir, safe_serialization=True)
        save_model_parts(job, config=False)
        parameters = sum(p.numel() for p in student.parameters())
        teacher_parameters = sum(p.numel() for p in teacher.parameters())
        settings = {
            "layers": layers, "teacher_layers": total, "kept_layers": kept,
            "student": "the teacher's embeddings, the kept layers, pooler and head",
            "temperature": TEMPERATURE,
            "parameters_removed_share": round(1 - parameters / teacher_parameters, 6),
            "recovery": facts,
        }  # fmt: skip
        notes = [
            *data.notes,
            f"kept encoder layers {kept} of {total} "
            f"({1 - parameters / teacher_parameters:.1%} fewer parameters)",
        ]
        return Compressed(
            engine=f"torch {torch.__version__} (layer-dropping distillation, KL at T="
            f"{TEMPERATURE:g})",
            settings=settings, parameters=parameters, notes=notes,
        )  # fmt: skip
