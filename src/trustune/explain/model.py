"""What an explainer needs from a classifier: predictions on token ids, and gradients when it has them.

Perturbation methods only call :meth:`ExplainableModel.probabilities`, so any model that maps
token ids to logits (a quantized model, an ONNX runtime session behind the Hugging Face call
convention) can be explained by them. Gradient methods also need a float torch module whose
input embeddings they can hook.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from trustune.config import Precision

__all__ = ["ExplainableModel"]

_QUANTIZED_MODULES = (
    "torch.ao.nn.quantized",
    "torch.nn.quantized",
    "torch.ao.nn.intrinsic.quantized",
)


@dataclass
class ExplainableModel:
    """A classifier seen by the explainers: tokenizer, labels, and its forward pass on token ids."""

    model: Any
    tokenizer: Any
    labels: tuple[int | str, ...]
    max_length: int
    pad_id: int
    # "probability": the explained function is a class probability (softmax of the outputs);
    # "output": the raw output itself (a regression's predicted score, labels == ("score",))
    explains: str = "probability"

    @classmethod
    def from_classifier(cls, classifier: Any) -> ExplainableModel:
        """Wrap a loaded run (:class:`~trustune.TextClassifier`, :class:`~trustune.TextRegressor`,
        or anything with the same attributes)."""
        task = getattr(classifier, "task", None)
        return cls(
            model=classifier.model,
            tokenizer=classifier.tokenizer,
            labels=tuple(classifier.labels),
            max_length=int(classifier.max_length),
            pad_id=int(classifier.pad_id),
            explains=str(getattr(task, "explains", "probability")),
        )

    def label_index(self, label: Any) -> int:
        """The class index of a label; an unknown label is an error listing the labels."""
        from trustune.data import LabelMap

        return LabelMap(self.labels).index_of(label)

    @property
    def gradient_support(self) -> str | None:
        """None when gradients can flow to the input embeddings, else why they cannot."""
        if not isinstance(self.model, torch.nn.Module):
            reason = getattr(self.model, "no_gradients_reason", None)
            return reason or f"it is a {type(self.model).__name__}, not a torch module"
        embeddings = getattr(self.model, "get_input_embeddings", lambda: None)()
        if not isinstance(embeddings, torch.nn.Module):
            return "it has no input embedding layer to attribute to"
        for module in self.model.modules():
            if type(module).__module__.startswith(_QUANTIZED_MODULES):
                return "it is quantized (integer kernels have no gradients)"
        if not any(p.is_floating_point() for p in self.model.parameters()):
            return "it has no floating-point weights"
        return None

    @property
    def device(self) -> torch.device:
        """Where the model's weights are (CPU for anything that is not a torch module)."""
        if isinstance(self.model, torch.nn.Module):
            for param in self.model.parameters():
                return param.device
        return torch.device("cpu")

    @contextlib.contextmanager
    def attribution_mode(self, precision: Precision, *, gradients: bool) -> Iterator[None]:
        """Run attributions fast where it is safe; the model is put back as it was afterwards.

        Gradient methods: bf16 autocast where ``precision`` resolves to bf16 (``auto``: only on
        hardware that multiplies bf16 natively), and then on CPU the eager attention kernel, as
        CPU training uses (:class:`trustune.config.Attention`); the completeness error shows the
        cost. In fp32 the model's own kernel is kept: eager and SDPA measured the same for
        integrated gradients (BENCHMARKS.md, "Explanations"). Perturbation methods score
        differences of probabilities, which bf16 rounding would drown when they are small, so
        ``auto`` keeps them in fp32.
        """
        from trustune.precision import resolve_precision

        device = self.device
        if precision is Precision.AUTO and not gradients:
            precision = Precision.FP32
        resolved = resolve_precision(precision, cuda=device.type == "cuda")
        with contextlib.ExitStack() as stack:
            if resolved is Precision.BF16 and isinstance(self.model, torch.nn.Module):
                stack.enter_context(torch.autocast(device.type, dtype=torch.bfloat16))
                if gradients and device.type == "cpu":
                    stack.enter_context(_attention(self.model, "eager"))
            yield

    @property
    def embeddings(self) -> torch.nn.Module:
        """The token embedding layer that gradient methods attribute to."""
        layer = self.model.get_input_embeddings()
        assert isinstance(layer, torch.nn.Module)
        return layer

    @functools.cached_property
    def _takes_token_types(self) -> bool:
        """Whether the model's forward has ``token_type_ids`` (BERT does, DistilBERT does not)."""
        forward = getattr(self.model, "forward", self.model)
        try:
            return "token_type_ids" in inspect.signature(forward).parameters
        except (TypeError, ValueError):
            return False

    def logits(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:  # fmt: skip
        """Logits (batch, classes) of padded token ids; differentiable for a float torch model.

        ``token_type_ids`` (batch, seq) are the segments of text pairs; None: all zeros.
        """
        inputs = {"input_ids": input_ids.long(), "attention_mask": attention_mask}
        if self._takes_token_types:
            inputs["token_type_ids"] = (
                torch.zeros_like(input_ids, dtype=torch.long)
                if token_type_ids is None
                else token_type_ids.long()
            )
        output = self.model(**inputs)
        logits = getattr(output, "logits", output)
        if not isinstance(logits, torch.Tensor):
            logits = torch.as_tensor(np.asarray(logits))
        return logits.float()

    def probabilities(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:  # fmt: skip
        """Class probabilities (batch, classes), or for a model that ``explains`` its ``output``
        the outputs themselves: the function every explanation is about."""
        logits = self.logits(input_ids, attention_mask, token_type_ids)
        return logits if self.explains == "output" else torch.softmax(logits, dim=-1)

    def predict_ids(
        self, sequences: Sequence[Sequence[int]], *, batch_size: int = 64,
        token_types: Sequence[Sequence[int] | None] | None = None,
    ) -> np.ndarray:  # fmt: skip
        """Probabilities of unpadded token-id sequences, batched by length, in input order.

        ``token_types``: the segments of each sequence (text pairs); None, or a None entry: zeros.
        """
        from trustune.explain.words import pad_token_batch

        out = np.empty((len(sequences), len(self.labels)), dtype=np.float64)
        order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                idx = order[start : start + batch_size]
                ids, mask = pad_token_batch([sequences[i] for i in idx], pad_id=self.pad_id)
                types = None
                if token_types is not None:
                    types = torch.zeros_like(ids)
                    for row, i in enumerate(idx):
                        kinds = token_types[i]
                        if kinds is not None:
                            types[row, : len(kinds)] = torch.as_tensor(list(kinds))
                out[idx] = self.probabilities(ids, mask, types).double().numpy()
        return out


@contextlib.contextmanager
def _attention(model: Any, implementation: str) -> Iterator[None]:
    """Switch a Hugging Face model's attention kernel for the duration of the block."""
    config = getattr(model, "config", None)
    previous = getattr(config, "_attn_implementation", None)
    switch = getattr(model, "set_attn_implementation", None)
    if switch is None or previous is None or previous == implementation:
        yield
        return
    switch(implementation)
    try:
        yield
    finally:
        switch(previous)
