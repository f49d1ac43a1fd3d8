"""The task protocol: everything a stage asks about what kind of model a run is.

A task owns, in one place, its targets (how raw values become training targets and back),
the head of its model (the arguments of the Auto class), its per-example loss (the plain step
and the DP step call the same function), its metrics and headline figures, and its section of
the manifest. Stages hold a *fitted* task: the class is the registry entry, an instance carries
what was learned from the data (a label map, target statistics) and is rebuilt from the
manifest by :meth:`Task.from_manifest`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch

from trustune.config import Loss, RunConfig
from trustune.data import Columns, LabeledData, TrainingData
from trustune.encoding import Encoded, encode_texts
from trustune.manifest import Manifest

if TYPE_CHECKING:
    from trustune.models import ResolvedModel

__all__ = ["Task"]


class Task(ABC):
    """One task of the registry (:func:`trustune.tasks.get_task`), fitted to one run."""

    name: ClassVar[str]
    #: what the predicted thing is called in messages and reports ("label", "score")
    target_noun: ClassVar[str]
    #: whether a validation split keeps every class on both sides
    stratified: ClassVar[bool]
    #: the validation metric ``selection_metric: auto`` means
    default_selection: ClassVar[str]
    #: the metrics the loop may select on (``train.selection_metric``)
    selection_metrics: ClassVar[tuple[str, ...]]
    #: the figures shown first and kept in the manifest's metric summaries
    headline: ClassVar[tuple[str, ...]]
    #: losses ``task.loss`` may name for this task
    losses: ClassVar[tuple[Loss, ...]]
    lower_is_better: ClassVar[frozenset[str]] = frozenset({"loss", "mse", "mae"})
    #: what explanations attribute: "probability" (of a class, softmax of the outputs) or
    #: "output" (the raw output, e.g. a predicted score)
    explains: ClassVar[str] = "probability"
    #: whether the defaults by data size (trustune.train.sizing) apply to this task's runs
    sized_by_data: ClassVar[bool] = True

    # -- what the data look like ------------------------------------------------------------

    @classmethod
    def claims_file(cls, path: str | Path) -> bool:
        """Whether ``task: auto`` picks this task from the file's columns alone, before any
        target is read (a file of conversations); default: no."""
        return False

    @classmethod
    def with_defaults(cls, config: RunConfig) -> RunConfig:
        """``config`` with this task's defaults in the keys the user did not set (a task whose
        models differ from the encoder's: another default model, context, learning rate)."""
        return config

    @classmethod
    def read_data(cls, config: RunConfig) -> tuple[TrainingData, list[str]] | None:
        """The training and validation data, when this task reads its files itself (not texts
        with a label column), and notes for the terminal; None: the labeled-table reader."""
        return None

    @classmethod
    @abstractmethod
    def claims(cls, raw_targets: Sequence[Any]) -> bool:
        """Whether ``task: auto`` picks this task for these raw targets."""

    @classmethod
    def check_columns(cls, data: LabeledData, columns: Columns, path: str) -> None:
        """Refuse targets this task cannot learn from (before any split); default: none."""
        return None

    @classmethod
    @abstractmethod
    def fit(cls, data: TrainingData, config: RunConfig) -> Task:
        """The task fitted to the training data, with both parts' targets encoded."""

    @classmethod
    @abstractmethod
    def from_manifest(cls, manifest: Manifest) -> Task:
        """The fitted task of a finished run, from its manifest."""

    @abstractmethod
    def encode(self, part: LabeledData, *, source: str) -> None:
        """Fill ``part.labels`` with training targets (and its manifest facts in ``part.info``)."""

    # -- the model --------------------------------------------------------------------------

    def load_model(self, resolved: ResolvedModel, *, attn_implementation: str | None) -> Any:
        """The pretrained model with this task's head, to fine-tune."""
        from trustune.models import load_classifier

        return load_classifier(resolved, head=self.head(), attn_implementation=attn_implementation)

    def load_tokenizer(self, resolved: ResolvedModel) -> Any:
        from trustune.models import load_tokenizer

        return load_tokenizer(resolved)

    def encode_inputs(self, tokenizer: Any, part: LabeledData, *, max_length: int) -> Encoded:
        """Token ids of a part's examples (a task whose targets are tokens also fills
        ``part.labels`` with them here)."""
        return encode_texts(tokenizer, part.texts, max_length=max_length, pairs=part.pairs)

    def compute_outputs(
        self, model: Any, encoded: Encoded, targets: Sequence[Any], *, batch_size: int,
        pad_id: int, device: Any = "cpu",
    ) -> np.ndarray:  # fmt: skip
        """What :meth:`quick_metrics` and :meth:`metrics` read, one row per example: the
        logits (a generation task: each example's summed token loss and token count, which
        need the ``targets``)."""
        from trustune.inference import compute_logits

        return compute_logits(model, encoded, batch_size=batch_size, pad_id=pad_id, device=device)

    @abstractmethod
    def head(self) -> dict[str, Any]:
        """Arguments for ``AutoModelForSequenceClassification`` that give the new head."""

    @property
    @abstractmethod
    def outputs(self) -> int:
        """How many numbers the head gives per example."""

    @abstractmethod
    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The loss of every example, shape (batch,): the plain step averages it, the DP step
        clips each example's gradient of it, the membership audit reads it."""

    def finish(self, model: torch.nn.Module) -> torch.nn.Module | None:
        """Turn the trained model into the one that is saved: changed in place (None), or
        another module returned (LoRA adapters merged into their base); default: unchanged."""
        return None

    def saved_loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """:meth:`loss` of the saved model's outputs, which :meth:`finish` may have changed: the
        loss training minimised, per example (the membership audit's signal)."""
        return self.loss(logits, targets)

    # -- metrics ----------------------------------------------------------------------------

    @abstractmethod
    def quick_metrics(self, targets: np.ndarray, logits: np.ndarray) -> dict[str, float]:
        """The figures training tracks each validation, ``loss`` among them."""

    @abstractmethod
    def metrics(self, targets: Sequence[Any], logits: np.ndarray) -> dict[str, Any]:
        """Every metric of an evaluation (the EvalResult of docs/run-artifact.md)."""

    def summary(self, result: Mapping[str, Any]) -> dict[str, Any]:
        """The headline figures of an evaluation, for the manifest."""
        return {k: result.get(k) for k in self.headline}

    def selection_value(self, metrics: Mapping[str, float], metric: str) -> float:
        """A number to maximise: the metric, negated where lower is better."""
        if metric not in metrics:
            raise KeyError(metric)
        value = float(metrics[metric])
        return -value if metric in self.lower_is_better else value

    # -- the run artifact -------------------------------------------------------------------

    @abstractmethod
    def manifest_section(self) -> dict[str, Any]:
        """What the manifest records of the fitted task (merged into its top level)."""

    def describe(self) -> str:
        """One line for the terminal: what was learned from the data."""
        return self.name
