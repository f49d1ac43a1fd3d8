"""``prune:SPARSITY``: structured pruning of the feed-forward blocks, then a short recovery.

**What is removed.** In every encoder layer the same share of the feed-forward block's
intermediate neurons: a neuron is a row of the up-projection (``intermediate.dense``;
DistilBERT ``ffn.lin1``) with its bias and the matching column of the down-projection
(``output.dense``; ``ffn.lin2``). ``config.intermediate_size`` (DistilBERT ``hidden_dim``)
shrinks, so the result is a plain, smaller transformers checkpoint: the matrices are smaller,
not sparse, so the file shrinks and the feed-forward multiply-adds fall by the same share.
SPARSITY is the share of the prunable parameters removed; the prunable parameters are the
feed-forward neurons' (each one's up row, bias and down column), about two thirds of an
encoder layer. Embeddings, attention, LayerNorms and the head stay as they are. The number of
neurons kept is rounded to a multiple of 8 (in blocks of 64 neurons or more), sizes the matrix
kernels are tuned for: on this project's 2-core CPU a lone 384 -> 1075 -> 384 block ran 10-15%
slower than 384 -> 1072 -> 384 (fp32; within noise for the whole model). The share actually
removed is recorded as ``sparsity_achieved``.

**Attention heads are kept.** transformers 5 (5.24 here) removed ``prune_heads`` and
``config.pruned_heads``, and head masks with them (the signal of Michel et al. 2019's head
importance); BERT's configuration gives every layer one head count, with a head size of
hidden_size / num_attention_heads, so a model with heads removed has no configuration that
plain transformers loads. Nor are the remaining weights magnitude-pruned: zeros in a dense
matrix make neither the file smaller nor the dense kernels faster.

**Which neurons.** The importance of neuron j is the mean of |activation_j| over the real
(non-padding) tokens of up to ``--calibration-rows`` recovery texts, times the L2 norm of its
output weights: the expected size of what the neuron adds to the layer's output (the
structured form of Wanda, Sun et al. 2023). It needs no labels and no backward pass, so it is
the same for a DP parent recovering on unlabeled public texts; a gradient × activation
(first-order Taylor) score needs a loss whose gradient at the parent is not zero, and the
distillation loss against that same parent has none. Scores come from the recovery texts,
never from ``--data`` (the data policy of :mod:`trustune.compress.recovery`). The recovery
fine-tune (one epoch by default) then learns the unpruned parent's outputs.
"""

from __future__ import annotations

import copy
import math
from typing import TYPE_CHECKING, Any

from trustune.compress.methods import (
    Compressed,
    Job,
    Method,
    register_method,
    save_model_parts,
    torch_parent,
)
from trustune.compress.recovery import RecoveryData, check_recovery_data, recover, recovery_data
from trustune.errors import ConfigError

if TYPE_CHECKING:
    import torch

__all__ = ["FFN_LAYOUTS", "PruneMethod", "feed_forwards", "sparsity_of"]

# (config attribute of the intermediate size, up-projection, down-projection) per layer
FFN_LAYOUTS = (
    ("intermediate_size", "intermediate.dense", "output.dense"),  # BERT, RoBERTa, ELECTRA, ...
    ("hidden_dim", "ffn.lin1", "ffn.lin2"),  # DistilBERT
)
RECOVERY_EPOCHS = 1
ALIGN = 8  # the kept neurons per layer are a multiple of this (where there are >= 64)
SCORE_BATCH = 32


def sparsity_of(job: Job) -> float:
    """``prune:SPARSITY`` as a number in (0, 1)."""
    text = job.spec.argument or ""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 0 < value < 1):
        raise ConfigError(
            f"--method {job.spec}: SPARSITY must be a number between 0 and 1 (the share of the "
            "feed-forward weights removed), e.g. prune:0.3"
        )
    return value


def feed_forwards(model: Any) -> tuple[str, list[tuple[str, str]]]:
    """The config attribute of the intermediate size and every layer's (up, down) module
    names; a model without BERT-style feed-forward blocks is refused."""
    import torch

    modules = dict(model.named_modules())
    layers = getattr(model.config, "num_hidden_layers", None)
    for attribute, up_suffix, down_suffix in FFN_LAYOUTS:
        size = getattr(model.config, attribute, None)
        if not isinstance(size, int):
            continue
        found = []
        for name, up in modules.items():
            if not name.endswith("." + up_suffix):
                continue
            down_name = name[: -len(up_suffix)] + down_suffix
            down = modules.get(down_name)
            if (
                isinstance(up, torch.nn.Linear)
                and isinstance(down, torch.nn.Linear)
                and up.out_features == size == down.in_features
            ):
                found.append((name, down_name))
        if found and len(found) == layers:
            return attribute, found
    kind = getattr(model.config, "model_type", type(model).__name__)
    raise ConfigError(
        f"--method prune needs BERT-style feed-forward blocks (BERT, RoBERTa, DistilBERT, "
        f"ELECTRA, DeBERTa, ...), and this {kind} model has none it can find; try "
        "distill:LAYERS, int8 or onnx-int8"
    )


def _neuron_scores(
    model: Any, blocks: list[tuple[str, str]], data: RecoveryData, job: Job
) -> list[torch.Tensor]:
    """Per block, each neuron's mean |activation| on real tokens × its output weights' norm."""
    import numpy as np
    import torch

    from trustune.encoding import encode_texts, padded_batches

    n, most = len(data.texts), job.settings.calibration_rows
    picked = np.arange(n)
    if n > most:
        picked = np.sort(np.random.default_rng(job.settings.seed).choice(n, most, replace=False))
    texts = [data.texts[i] for i in picked]
    pairs = None if data.pairs is None else [data.pairs[i] for i in picked]
    parent = job.parent
    encoded = encode_texts(parent.tokenizer, texts, max_length=parent.max_length, pairs=pairs)
    modules = dict(model.named_modules())
    sums = [torch.zeros(modules[down].in_features) for _, down in blocks]
    current: dict[str, torch.Tensor] = {}

    def hook_for(i: int) -> Any:
        def hook(module: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> None:
            activation = args[0].detach().abs().float()  # (batch, seq, intermediate)
            real = current["mask"].unsqueeze(-1).to(activation.dtype)  # (batch, seq, 1)
            sums[i] += (activation * real).sum(dim=(0, 1))

        return hook

    hooks = [
        modules[down].register_forward_pre_hook(hook_for(i)) for i, (_, down) in enumerate(blocks)
    ]
    tokens = 0
    model.eval()
    try:
        with torch.no_grad():
            for _, batch in padded_batches(encoded, batch_size=SCORE_BATCH, pad_id=parent.pad_id):
                current["mask"] = batch["attention_mask"]
                tokens += int(batch["attention_mask"].sum())
                model(**batch)
    finally:
        for handle in hooks:
            handle.remove()
    return [
        (total / max(1, tokens)) * modules[down].weight.detach().float().norm(dim=0)
        for total, (_, down) in zip(sums, blocks, strict=True)
    ]


def _replace(model: Any, name: str, module: torch.nn.Module) -> None:
    owner, _, attribute = name.rpartition(".")
    setattr(model.get_submodule(owner), attribute, module)


def _shrink(model: Any, up_name: str, down_name: str, keep: torch.Tensor) -> None:
    """Keep only the neurons ``keep`` (sorted indices) of one feed-forward block."""
    import torch

    up, down = model.get_submodule(up_name), model.get_submodule(down_name)
    new_up = torch.nn.Linear(up.in_features, len(keep), bias=up.bias is not None)
    new_down = torch.nn.Linear(len(keep), down.out_features, bias=down.bias is not None)
    with torch.no_grad():
        new_up.weight.copy_(up.weight[keep])  # (kept, hidden)
        if up.bias is not None:
            new_up.bias.copy_(up.bias[keep])
        new_down.weight.copy_(down.weight[:, keep])  # (hidden, kept)
        if down.bias is not None:
            new_down.bias.copy_(down.bias)
    _replace(model, up_name, new_up)
    _replace(model, down_name, new_down)


@register_method
class PruneMethod(Method):
    name = "prune"
    summary = (
        "remove the least important feed-forward neurons of every layer (config.intermediate_size "
        "shrinks), then fine-tune briefly; loads in plain transformers"
    )
    argument = "SPARSITY"
    argument_default = "0.3"

    def check(self, job: Job) -> None:
        sparsity_of(job)
        feed_forwards(torch_parent(job, str(job.spec)))
        check_recovery_data(job, str(job.spec))

    def apply(self, job: Job) -> Compressed:
        import torch

        method = str(job.spec)
        sparsity = sparsity_of(job)
        parent_model = torch_parent(job, method)
        student = copy.deepcopy(parent_model).float().eval()
        attribute, blocks = feed_forwards(student)
        data = recovery_data(job, method)
        before = int(getattr(student.config, attribute))
        kept = before - min(before - 1, max(1, round(sparsity * before)))
        if before >= 8 * ALIGN:  # a multiple of ALIGN, as the matrix kernels prefer
            kept = min(before - ALIGN, max(ALIGN, ALIGN * round(kept / ALIGN)))
        removed = before - kept
        parent_parameters = sum(p.numel() for p in parent_model.parameters())
        scores = _neuron_scores(student, blocks, data, job)
        for (up_name, down_name), score in zip(blocks, scores, strict=True):
            keep = torch.sort(torch.topk(score, kept).indices).values
            _shrink(student, up_name, down_name, keep)
        setattr(student.config, attribute, kept)
        facts = recover(job, student, data, method=method, default_epochs=RECOVERY_EPOCHS)
        student.save_pretrained(job.model_dir, safe_serialization=True)
        save_model_parts(job, config=False)
        parameters = sum(p.numel() for p in student.parameters())
        rows = min(len(data.texts), job.settings.calibration_rows)
        settings = {
            "sparsity": sparsity, "sparsity_achieved": round(removed / before, 6),
            "pruned": "feed-forward intermediate neurons, the same number in every layer",
            attribute: {"before": before, "after": kept},
            "importance": f"mean |activation| x L2 norm of the output weights, on {rows} "
            "recovery texts",
            "attention_heads": "kept (transformers 5 cannot save a model with heads removed)",
            "parameters_removed": parent_parameters - parameters,
            "parameters_removed_share": round(1 - parameters / parent_parameters, 6),
            "recovery": facts,
        }  # fmt: skip
        notes = [
            *data.notes,
            f"removed {removed} of {before} feed-forward neurons per layer "
            f"({1 - parameters / parent_parameters:.1%} of all parameters); attention heads are "
            "kept, since transformers 5 has no saved form of a model with heads removed",
        ]
        return Compressed(
            engine=f"torch {torch.__version__} (structured feed-forward pruning, recovery "
            "fine-tune)",
            settings=settings, parameters=parameters, notes=notes,
        )  # fmt: skip
