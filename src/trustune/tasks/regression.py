"""Text regression (single texts or pairs): a score per example, MSE or Huber on standardised
targets, Pearson, Spearman, MSE, MAE and R².

Targets are standardised with the training rows' mean and standard deviation (under DP with
the validation rows', which the guarantee does not cover, so the statistics spend no privacy
budget). When the head ends in a linear layer the statistics are folded into it after
training: the saved model gives scores in the original unit, in plain transformers too.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from trustune.config import Loss, RunConfig
from trustune.data import Columns, LabeledData, TrainingData
from trustune.errors import ArtifactError, ConfigError, DataError
from trustune.manifest import Manifest
from trustune.messages import shown
from trustune.tasks.base import Task
from trustune.tasks.registry import register_task

__all__ = ["TargetScale", "TextRegression", "numeric_targets", "regression_metrics"]

_HEAD_NAMES = ("classifier", "score", "out_proj", "classifier.out_proj", "head")
_POINTS = 500  # predicted-vs-true points kept for the report's scatter plot
_RANGE_BINS = 5
_HISTOGRAM_BINS = 20


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(str(value).strip())
    except ValueError:
        return None


def numeric_targets(raw: Sequence[Any]) -> np.ndarray | None:
    """The raw targets as finite floats, or None when any is not a finite number."""
    values = [_number(v) for v in raw]
    if not values or any(v is None or not math.isfinite(v) for v in values):
        return None
    return np.asarray(values, dtype=np.float64)


def _describe_rows(rows: list[int]) -> str:
    return ", ".join(str(r) for r in rows[:8]) + (" ..." if len(rows) > 8 else "")


def _thin(n: int, most: int) -> np.ndarray:
    return np.unique(np.linspace(0, n - 1, min(n, most)).round().astype(int)) if n else np.array([])


def regression_metrics(
    y_true: Sequence[float] | np.ndarray, y_pred: Sequence[float] | np.ndarray
) -> dict[str, Any]:
    """Pearson, Spearman, MSE, MAE, R², and the report's scatter, residuals and error by range."""
    from scipy import stats
    from sklearn import metrics as skm

    y = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    constant = len(y) < 2 or np.ptp(y) == 0 or np.ptp(p) == 0
    pearson = None if constant else float(stats.pearsonr(y, p).statistic)
    spearman = None if constant else float(stats.spearmanr(y, p).statistic)
    residuals = p - y
    counts, edges = np.histogram(residuals, bins=_HISTOGRAM_BINS)
    bounds = np.unique(np.quantile(y, np.linspace(0, 1, _RANGE_BINS + 1)))
    by_range = []
    for i in range(len(bounds) - 1):
        lo, hi = bounds[i], bounds[i + 1]
        inside = (y >= lo) & ((y < hi) if i < len(bounds) - 2 else (y <= hi))
        if inside.any():
            by_range.append(
                {
                    "range": [round(float(lo), 4), round(float(hi), 4)],
                    "rows": int(inside.sum()),
                    "mae": round(float(np.abs(residuals[inside]).mean()), 5),
                    "bias": round(float(residuals[inside].mean()), 5),
                }
            )
    keep = _thin(len(y), _POINTS)
    return {
        "pearson": pearson,
        "spearman": spearman,
        "mse": float(skm.mean_squared_error(y, p)),
        "mae": float(skm.mean_absolute_error(y, p)),
        "r2": None if len(y) < 2 or np.ptp(y) == 0 else float(skm.r2_score(y, p)),
        "rows": len(y),
        "points": {
            "true": [round(float(y[i]), 4) for i in keep],
            "predicted": [round(float(p[i]), 4) for i in keep],
        },
        "residuals": {"counts": counts.tolist(), "edges": [round(float(e), 5) for e in edges]},
        "by_range": by_range,
    }


class TargetScale:
    """Standardisation of the targets: ``z = (y - mean) / std``."""

    def __init__(self, mean: float, std: float) -> None:
        self.mean, self.std = float(mean), float(std)

    def forward(self, values: np.ndarray) -> np.ndarray:
        return (np.asarray(values, dtype=np.float64) - self.mean) / self.std

    def inverse(self, z: np.ndarray) -> np.ndarray:
        return np.asarray(z, dtype=np.float64) * self.std + self.mean


def _head_layer(model: torch.nn.Module) -> torch.nn.Linear | None:
    """The final linear layer with one output, which the statistics can be folded into."""
    modules = dict(model.named_modules())
    for name in _HEAD_NAMES:
        layer = modules.get(name)
        if isinstance(layer, torch.nn.Linear) and layer.out_features == 1:
            return layer
    return None


@register_task
class TextRegression(Task):
    """A number per text (or text pair): a rating, a similarity, a price."""

    name = "text-regression"
    target_noun = "score"
    stratified = False
    default_selection = "spearman"
    selection_metrics = ("spearman", "pearson", "mse", "mae", "loss")
    headline = ("spearman", "pearson", "mse", "mae", "r2")
    losses: ClassVar[tuple[Loss, ...]] = (Loss.MSE, Loss.HUBER)
    explains = "output"

    def __init__(
        self, *, scale: TargetScale, folded: bool, loss: Loss, summary: Mapping[str, Any]
    ) -> None:
        self.scale = scale
        self.folded = folded  # the model's output is in the original unit
        self.loss_type = Loss.MSE if loss is Loss.AUTO else loss
        self.facts = dict(summary)

    def __repr__(self) -> str:
        return f"TextRegression(mean={self.scale.mean:.4g}, std={self.scale.std:.4g})"

    @classmethod
    def claims(cls, raw_targets: Sequence[Any]) -> bool:
        numbers = numeric_targets(raw_targets)
        return numbers is not None and not bool(np.all(np.equal(np.mod(numbers, 1), 0)))

    @classmethod
    def check_columns(cls, data: LabeledData, columns: Columns, path: str) -> None:
        _numbers(data.raw_labels, column=columns.label, source=path)

    @classmethod
    def fit(cls, data: TrainingData, config: RunConfig) -> TextRegression:
        if config.task.loss not in (Loss.AUTO, *cls.losses):
            raise ConfigError(
                f"--loss {config.task.loss.value} is not a regression loss; use "
                f"{[loss.value for loss in cls.losses]} (or auto)"
            )
        column = data.columns.label
        train = _numbers(data.train.raw_labels, column=column, source=_source(data.train))
        validation = _numbers(
            data.validation.raw_labels, column=column, source=_source(data.validation)
        )
        # DP: the statistics come from the validation rows, outside the guarantee
        basis, basis_name = (
            (validation, "validation") if config.privacy.enabled else (train, "train")
        )
        std = float(basis.std())
        if not std > 0:
            raise DataError(
                f"every {basis_name} target of the column {shown(column)} is {basis[0]:g}; a "
                "regression needs targets that vary"
            )
        summary = {
            "column": column,
            "statistics_from": basis_name,
            "min": float(train.min()),
            "max": float(train.max()),
        }
        task = cls(
            scale=TargetScale(float(basis.mean()), std), folded=False, loss=config.task.loss,
            summary=summary,
        )  # fmt: skip
        task.encode(data.train, source=_source(data.train))
        task.encode(data.validation, source=_source(data.validation))
        return task

    @classmethod
    def from_manifest(cls, manifest: Manifest) -> TextRegression:
        target = manifest.target
        if target is None:
            raise ArtifactError("the manifest of a regression run has no target section")
        if target.mean is None or target.std is None:
            raise ArtifactError("the manifest's target section needs a numeric mean and std")
        scale = TargetScale(float(target.mean), float(target.std))
        if not (math.isfinite(scale.mean) and math.isfinite(scale.std) and scale.std > 0):
            raise ArtifactError("the manifest's target mean and std must be finite, std > 0")
        loss = Loss.parse(target.loss or "mse", "target.loss")
        facts = ("column", "statistics_from", "min", "max")
        return cls(
            scale=scale, folded=target.folded, loss=loss,
            summary={k: v for k, v in target.to_dict().items() if k in facts},
        )  # fmt: skip

    def encode(self, part: LabeledData, *, source: str) -> None:
        values = _numbers(part.raw_labels, column=self.facts.get("column"), source=source)
        part.labels = [float(z) for z in self.scale.forward(values)]
        part.info["target_stats"] = {
            "mean": round(float(values.mean()), 6),
            "std": round(float(values.std()), 6),
            "min": float(values.min()),
            "max": float(values.max()),
        }

    def head(self) -> dict[str, Any]:
        return {"num_labels": 1, "problem_type": "regression"}

    @property
    def outputs(self) -> int:
        return 1

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        predicted = logits.float().squeeze(-1)
        if self.loss_type is Loss.HUBER:
            return F.huber_loss(predicted, targets.float(), reduction="none", delta=1.0)
        return F.mse_loss(predicted, targets.float(), reduction="none")

    def saved_loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if self.folded:  # the saved head gives scores in the original unit, training saw z
            logits = (logits.double() - self.scale.mean) / self.scale.std
        return self.loss(logits, targets)

    def finish(self, model: torch.nn.Module) -> None:
        """Fold the target statistics into the last linear layer: scores in the original unit."""
        layer = _head_layer(model)
        if layer is None:
            return
        with torch.no_grad():
            layer.weight.mul_(self.scale.std)
            if layer.bias is not None:
                layer.bias.mul_(self.scale.std).add_(self.scale.mean)
        self.folded = True

    def values(self, logits: np.ndarray) -> np.ndarray:
        """Scores in the original unit from the model's outputs (n, 1)."""
        raw = np.asarray(logits, dtype=np.float64).reshape(-1, self.outputs)[:, 0]
        return raw if self.folded else self.scale.inverse(raw)

    def quick_metrics(self, targets: np.ndarray, logits: np.ndarray) -> dict[str, float]:
        y = self.scale.inverse(np.asarray(targets, dtype=np.float64))
        p = self.values(logits)
        full = regression_metrics(y, p)
        z_error = self.scale.forward(p) - self.scale.forward(y)
        loss = (
            F.huber_loss(torch.as_tensor(z_error), torch.zeros(len(z_error)), delta=1.0).item()
            if self.loss_type is Loss.HUBER
            else float(np.mean(z_error**2))
        )
        return {
            "loss": float(loss),
            "mse": full["mse"],
            "mae": full["mae"],
            "pearson": full["pearson"] if full["pearson"] is not None else 0.0,
            "spearman": full["spearman"] if full["spearman"] is not None else 0.0,
        }

    def metrics(self, targets: Sequence[Any], logits: np.ndarray) -> dict[str, Any]:
        y = self.scale.inverse(np.asarray(targets, dtype=np.float64))
        result = regression_metrics(y, self.values(logits))
        result["loss"] = self.quick_metrics(np.asarray(targets), logits)["loss"]
        return result

    def manifest_section(self) -> dict[str, Any]:
        return {
            "target": {
                **self.facts,
                "mean": self.scale.mean,
                "std": self.scale.std,
                "standardised": True,
                "folded": self.folded,
                "loss": self.loss_type.value,
            }
        }

    def describe(self) -> str:
        return (
            f"{self.name}, scores {self.facts.get('min', 0):g} to {self.facts.get('max', 0):g} "
            f"(mean {self.scale.mean:.3g}, sd {self.scale.std:.3g}), {self.loss_type.value} loss"
        )


def _source(part: LabeledData) -> str:
    return str(part.info.get("source") or part.info.get("path"))


def _numbers(raw: Sequence[Any], *, column: Any, source: str) -> np.ndarray:
    """The raw targets as floats; anything else is a one-line error naming the rows."""
    values = [_number(v) for v in raw]
    bad = [i + 1 for i, v in enumerate(values) if v is None or not math.isfinite(v)]
    if bad:
        example = raw[bad[0] - 1]
        raise DataError(
            f"{source}: {len(bad)} target(s) of the column {shown(column)} are not finite "
            f"numbers (rows {_describe_rows(bad)} of the kept rows, e.g. {shown(example)}); a "
            "regression needs a number in every row. Fix them, or train a classifier with "
            "--task text-classification"
        )
    return np.asarray(values, dtype=np.float64)
