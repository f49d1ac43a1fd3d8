"""How an ONNX graph is quantized, chosen by measuring candidates on the calibration sample.

Each candidate (a *trial*) is quantized for real and run on the sample (``Job.sample()``: a
seeded pick of the guard's rows, tokenized and batched as prediction batches them), and its
outputs are compared with the float graph's: the KL divergence of the class probabilities
(for regression, the squared difference relative to the outputs' variance) and how often the
two agree (the same class; Spearman correlation for regression). ``100 * (1 - agreement)`` is
the estimated drop in points: on the sample, each disagreement costs the int8 model at most
one correct row.

The search, in order (every trial recorded):

1. everything int8 except the nodes the caller keeps float: the head (the layers after the
   head's first-token Gather run on one row per text, so int8 would save nothing there);
2. the same with SmoothQuant smoothing of the MatMul inputs whose channels are out of scale
   (``onnx_graph.smooth_activations``), kept when it measures better;
3. **float fallback**, only when the estimated drop is still above the budget: the weighted
   nodes are split into groups at their LayerNormalization boundaries (for BERT: each layer's
   attention and feed-forward, two to a group; at most ``MAX_GROUPS`` groups), each group is
   tried in float, and the most sensitive groups stay float, one after another, until the
   estimate is within budget, keeping one more stops helping, or ``MAX_FLOAT_GROUPS`` are float
   (beyond that, little of the int8 speed is left).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from trustune.compress.methods import Job
    from trustune.progress import Progress

__all__ = [
    "MAX_FLOAT_GROUPS",
    "MAX_GROUPS",
    "Calibration",
    "Choice",
    "Trial",
    "choose_quantization",
    "node_groups",
]

MAX_GROUPS = 8  # sensitivity trials of the fallback (one per group)
MAX_FLOAT_GROUPS = 2
SMOOTHING_ALPHA = 0.8  # measured best of 0.5-1.0 on MiniLM SST-2 (KL on the sample)
SMOOTHING_MIN_RATIO = 8.0  # smooth a tensor whose channel maxima spread more than this
HEAD_REASON = "the head: runs on one row per text, int8 would save nothing"

Quantize = Callable[[Path, Path, list[str]], None]  # (float graph, output, nodes kept float)


@dataclass(frozen=True)
class Measured:
    """A quantized graph's outputs against the float graph's, on the sample."""

    error: float  # mean KL of the class probabilities, or relative squared difference
    agreement: float  # same class (classification) or Spearman (regression)

    @property
    def estimated_drop(self) -> float:
        return round(100 * (1 - self.agreement), 4)


@dataclass
class Trial:
    """One candidate quantization, as measured."""

    label: str
    float_nodes: tuple[str, ...]
    smoothed: tuple[str, ...]
    measured: Measured
    path: Path
    seconds: float

    def record(self) -> dict[str, Any]:
        return {
            "trial": self.label,
            "float_nodes": len(self.float_nodes),
            "smoothed_tensors": len(self.smoothed),
            "error": round(self.measured.error, 6),
            "agreement": round(self.measured.agreement, 4),
            "estimated_drop_points": self.measured.estimated_drop,
            "seconds": round(self.seconds, 1),
        }


@dataclass
class Choice:
    """The trial kept, why its float nodes are float, and every trial."""

    trial: Trial
    float_nodes: dict[str, str]  # node -> why it stayed float
    smoothing: dict[str, Any] | None
    trials: list[Trial] = field(default_factory=list)
    budget_points: float = 0.0
    error_metric: str = "kl"
    rows: int = 0

    def settings(self) -> dict[str, Any]:
        measured = self.trial.measured
        return {
            "float_nodes": [{"node": n, "why": why} for n, why in self.float_nodes.items()],
            "smoothing": self.smoothing,
            "search": {
                "chosen": self.trial.label,
                "budget_points": self.budget_points,
                "sample_rows": self.rows,
                "error": self.error_metric,
                "estimated_drop_points": measured.estimated_drop,
                "trials": [t.record() for t in self.trials],
            },
        }


class Calibration:
    """The sample as model inputs, and its outputs through a graph."""

    def __init__(self, batches: list[tuple[list[int], dict[str, np.ndarray]]], classes: bool):
        self.batches = batches
        self.rows = sum(len(idx) for idx, _ in batches)
        self.classes = classes

    @classmethod
    def from_job(cls, job: Job, input_names: list[str]) -> Calibration:
        from trustune.encoding import encode_texts, padded_batches

        sample, parent = job.sample(), job.parent
        encoded = encode_texts(
            parent.tokenizer, sample.texts, max_length=parent.max_length, pairs=sample.pairs
        )
        batches = []
        for idx, batch in padded_batches(encoded, batch_size=32, pad_id=parent.pad_id):
            feeds = {k: v.numpy().astype(np.int64) for k, v in batch.items() if k in input_names}
            if "token_type_ids" in input_names and "token_type_ids" not in feeds:
                feeds["token_type_ids"] = np.zeros_like(feeds["input_ids"])
            batches.append((list(idx), feeds))
        return cls(batches, classes=parent.task.name != "text-regression")

    def first(self, batches: int) -> Calibration:
        """The first ``batches`` batches only (rows renumbered)."""
        kept, start = [], 0
        for idx, feeds in self.batches[:batches]:
            kept.append((list(range(start, start + len(idx))), feeds))
            start += len(idx)
        return Calibration(kept, classes=self.classes)

    @property
    def feeds(self) -> list[dict[str, np.ndarray]]:
        return [feeds for _, feeds in self.batches]

    def outputs(self, graph: Path | bytes) -> np.ndarray:
        """The graph's logits on the sample, rows in sample order."""
        return self.outputs_and_ranges(graph, [])[0]

    def outputs_and_ranges(
        self, graph: Path | bytes, names: list[str]
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """The logits, and the per-channel max |x| over the sample of the tensors ``names``
        (graph outputs of ``graph``: see ``onnx_graph.with_outputs``)."""
        from trustune.models.onnx_model import onnx_session

        session = onnx_session(graph if isinstance(graph, bytes) else Path(graph))
        logits: np.ndarray | None = None
        channel_max: dict[str, np.ndarray] = {}
        for idx, feeds in self.batches:
            got = session.run(["logits", *names], feeds)
            if logits is None:
                logits = np.empty((self.rows, got[0].shape[1]), dtype=np.float32)
            logits[idx] = got[0]
            for name, value in zip(names, got[1:], strict=True):
                batch_max = np.abs(value.reshape(-1, value.shape[-1])).max(axis=0)
                seen = channel_max.get(name)
                channel_max[name] = batch_max if seen is None else np.maximum(seen, batch_max)
        assert logits is not None
        return logits, channel_max

    def measure(self, reference: np.ndarray, got: np.ndarray) -> Measured:
        ref, out = reference.astype(np.float64), got.astype(np.float64)
        if self.classes and ref.shape[1] > 1:
            log_p, log_q = _log_softmax(ref), _log_softmax(out)
            kl = float((np.exp(log_p) * (log_p - log_q)).sum(axis=1).mean())
            agree = float((ref.argmax(axis=1) == out.argmax(axis=1)).mean())
            return Measured(error=max(kl, 0.0), agreement=agree)
        from scipy.stats import spearmanr

        spread = float(ref.var()) or 1.0
        error = float(((ref - out) ** 2).mean() / spread)
        rhos = [
            float(spearmanr(ref[:, j], out[:, j]).statistic)
            if np.ptp(ref[:, j]) > 0 and np.ptp(out[:, j]) > 0
            else float(np.allclose(ref[:, j], out[:, j]))  # a constant output: same or not
            for j in range(ref.shape[1])
        ]
        rho = float(np.mean(rhos))
        return Measured(error=error, agreement=1.0 if math.isnan(rho) else rho)


def _log_softmax(x: np.ndarray) -> np.ndarray:
    shifted = x - x.max(axis=1, keepdims=True)
    result: np.ndarray = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return result


def node_groups(model: Any, skip: set[str]) -> list[list[str]]:
    """The weighted nodes (less ``skip``) in contiguous groups split at LayerNormalization
    nodes, merged so there are at most ``MAX_GROUPS``."""
    from trustune.compress.onnx_graph import weighted_matmuls

    weighted = {n.name for n in weighted_matmuls(model)} - skip
    segments: list[list[str]] = [[]]
    for node in model.graph.node:
        if node.op_type in ("LayerNormalization", "SkipLayerNormalization") and segments[-1]:
            segments.append([])
        elif node.name in weighted:
            segments[-1].append(node.name)
    segments = [s for s in segments if s]
    size = max(1, math.ceil(len(segments) / MAX_GROUPS))
    return [
        [name for segment in segments[i : i + size] for name in segment]
        for i in range(0, len(segments), size)
    ]


def choose_quantization(
    graph: Path, work: Path, calibration: Calibration, *, quantize: Quantize,
    budget_points: float, keep_float: dict[str, str], smoothing: bool = True,
    progress: Progress | None = None,
) -> Choice:  # fmt: skip
    """Run the search (module docstring) on the float ``graph``; ``keep_float``: nodes that stay
    float in every trial (the head), with the reason; trials are written into ``work``; the
    chosen trial's file is ``Choice.trial.path``."""
    import onnx

    from trustune.compress.onnx_graph import smooth_activations, weighted_matmuls, with_outputs

    model = onnx.load(str(graph))
    inputs = sorted({n.input[0] for n in weighted_matmuls(model) if n.op_type == "MatMul"})
    channel_max: dict[str, np.ndarray] = {}
    if smoothing and inputs:  # one float pass: the reference outputs and the channels' ranges
        capture = with_outputs(model, inputs).SerializeToString()
        reference, channel_max = calibration.outputs_and_ranges(capture, inputs)
    else:
        reference = calibration.outputs(graph)
    trials: list[Trial] = []
    task = "int8 calibration"
    if progress is not None:
        progress.start(task, total=None)

    def trial(label: str, source: Path, float_nodes: list[str], smoothed: Sequence[str]) -> Trial:
        started = time.perf_counter()
        out = work / f"trial-{len(trials)}.onnx"
        quantize(source, out, float_nodes)
        measured = calibration.measure(reference, calibration.outputs(out))
        done = Trial(
            label, tuple(float_nodes), tuple(smoothed), measured, out,
            time.perf_counter() - started,
        )  # fmt: skip
        trials.append(done)
        if progress is not None:
            progress.advance(task)
        return done

    head = list(keep_float)
    base = trial("int8", graph, head, [])
    source, smoothed, smoothing_record = graph, [], None
    if channel_max:
        smoothed = smooth_activations(
            model, channel_max, alpha=SMOOTHING_ALPHA, min_ratio=SMOOTHING_MIN_RATIO
        )
        if smoothed:
            candidate_source = work / "smoothed.onnx"
            onnx.save(model, str(candidate_source))
            candidate = trial("int8, smoothed", candidate_source, head, smoothed)
            if candidate.measured.error < base.measured.error:
                base, source = candidate, candidate_source
                smoothing_record = {
                    "method": "SmoothQuant", "alpha": SMOOTHING_ALPHA,
                    "min_channel_ratio": SMOOTHING_MIN_RATIO, "tensors": smoothed,
                }  # fmt: skip
    chosen, reasons = base, dict(keep_float)
    if base.measured.estimated_drop > budget_points:
        groups = node_groups(model, set(head))
        singles = []
        for i, group in enumerate(groups):
            name = f"group {i + 1} of {len(groups)}"
            kept_float = [*head, *group]
            singles.append(
                (trial(f"{name} in float", source, kept_float, base.smoothed), name, group)
            )
        ranked = sorted(
            (s for s in singles if s[0].measured.error < base.measured.error),
            key=lambda s: s[0].measured.error,
        )
        kept: list[str] = []
        for single, name, group in ranked[:MAX_FLOAT_GROUPS]:
            candidate = single
            if kept:
                label = f"{chosen.label.removesuffix(' in float')} + {name} in float"
                candidate = trial(label, source, [*head, *kept, *group], base.smoothed)
            if candidate.measured.error >= chosen.measured.error:
                break
            before, after = chosen.measured, candidate.measured
            why = (
                f"float fallback ({name}): disagreement with the float graph on the sample "
                f"{100 * (1 - before.agreement):.2f}% -> {100 * (1 - after.agreement):.2f}%, "
                f"error {before.error:.2g} -> {after.error:.2g}"
            )
            reasons |= dict.fromkeys(group, why)
            kept += group
            chosen = candidate
            if chosen.measured.estimated_drop <= budget_points:
                break
    if progress is not None:
        progress.end(task)
    return Choice(
        trial=chosen, float_nodes=reasons, smoothing=smoothing_record, trials=trials,
        budget_points=budget_points, rows=calibration.rows,
        error_metric=(
            "KL divergence of the class probabilities" if calibration.classes
            else "squared difference / variance of the outputs"
        ),
    )  # fmt: skip
