"""Text generation and chat (``causal-lm``, also called ``chat``): a causal language model
fine-tuned on conversations, prompts and completions, instructions or plain text.

The examples are read by :mod:`trustune.data.conversations` and tokenized by
:mod:`trustune.data.chat_encoding` (the model's chat template; loss on the assistant's tokens
only). The targets are tokens: :meth:`CausalLM.encode_inputs` fills a part's ``labels`` with
one list of token labels per example (``-100`` where nothing is learned), the loss is each
example's mean token cross-entropy (so DP-SGD clips per conversation and the membership audit
reads a per-example loss), and validation reports the loss per token and its perplexity.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from trustune.config import Loss, RunConfig
from trustune.data import Columns, LabeledData, TrainingData, with_validation
from trustune.encoding import IGNORE_INDEX, Encoded, collate
from trustune.errors import ConfigError
from trustune.manifest import Manifest
from trustune.tasks.base import Task
from trustune.tasks.registry import register_task

if TYPE_CHECKING:
    from trustune.models import ResolvedModel

__all__ = ["CHAT_DEFAULTS", "CausalLM", "labeled_part", "plain_rendering", "token_losses"]

# What a causal-lm run starts from where the user set nothing (the classifiers' defaults are
# for a 22M encoder on short texts): the packaged chat model, a longer context, smaller
# batches, one pass, and a learning rate for full fine-tuning (LoRA: ten times more).
CHAT_DEFAULTS: dict[str, Any] = {
    "model.name": "chat",
    "data.max_length": 512,
    "train.batch_size": 8,
    "train.epochs": 1,
    "train.lr": 2e-5,
}
LORA_LR = 2e-4


def plain_rendering(example: Any) -> str:
    """One example as plain text (``role: content`` lines): what fingerprints, lengths and
    messages see of it."""
    from trustune.data.conversations import Completion, Conversation

    if isinstance(example, Conversation):
        return "\n".join(f"{role}: {content}" for role, content in example.messages)
    if isinstance(example, Completion):
        return f"{example.prompt}\n{example.completion}"
    return str(example)


def labeled_part(chat: Any) -> LabeledData:
    """A :class:`ChatData` as the loop's data part: the examples, their plain rendering."""
    return LabeledData(
        texts=[plain_rendering(e) for e in chat.examples],
        raw_labels=[None] * len(chat.examples),
        info=dict(chat.info),
        examples=list(chat.examples),
    )


@functools.lru_cache(maxsize=8)
def _holds_conversations(path: str, mtime_ns: int, size: int) -> bool:
    """Whether a file's columns are those of a chat format other than plain text; cached by
    the file's identity, since a run asks before choosing its defaults and again when reading."""
    from trustune.data.conversations import ChatFormat, matching_formats
    from trustune.data.readers import read_table

    try:
        frame = read_table(Path(path), max_chars=100_000)
    except Exception:  # unreadable here: the labeled reader says what is wrong
        return False
    return bool(set(matching_formats(frame)) - {ChatFormat.TEXT})


def token_losses(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed next-token cross-entropy and the number of trained tokens, per example.

    ``logits`` (batch, seq, vocab), ``labels`` (batch, seq) with ``IGNORE_INDEX`` where nothing
    is learned; position t predicts label t + 1.
    """
    shifted = logits[:, :-1, :].float()
    targets = labels[:, 1:]
    losses = F.cross_entropy(
        shifted.reshape(-1, shifted.shape[-1]), targets.reshape(-1),
        ignore_index=IGNORE_INDEX, reduction="none",
    ).view(targets.shape)  # fmt: skip
    counted = (targets != IGNORE_INDEX).sum(dim=1)
    return losses.sum(dim=1), counted


@register_task
class CausalLM(Task):
    """A causal language model that learns to write the assistant's turns (or the texts)."""

    name = "causal-lm"
    target_noun = "reply"
    stratified = False
    default_selection = "loss"
    selection_metrics = ("loss",)
    headline = ("loss", "perplexity")
    losses: ClassVar[tuple[Loss, ...]] = (Loss.CROSS_ENTROPY,)
    explains = "output"
    sized_by_data = False

    def __init__(
        self, *, data_format: str, template_added: bool = False, lora: dict[str, Any] | None = None
    ) -> None:
        self.data_format = data_format
        self.template_added = template_added
        self.lora = lora  # r, alpha, dropout, target modules: LoRA adapters instead of all weights
        self._vocabulary: int | None = None  # the tokenizer's size once loaded (tokens added?)

    def __repr__(self) -> str:
        return f"CausalLM(format={self.data_format!r})"

    # -- data -------------------------------------------------------------------------------

    @classmethod
    def claims(cls, raw_targets: Sequence[Any]) -> bool:
        return False  # never from a label column: from the file's columns (claims_file)

    @classmethod
    def claims_file(cls, path: str | Path) -> bool:
        p = Path(path)
        try:
            stat = p.stat()
        except OSError:  # the labeled reader says what is wrong
            return False
        return _holds_conversations(str(p.resolve()), stat.st_mtime_ns, stat.st_size)

    @classmethod
    def with_defaults(cls, config: RunConfig) -> RunConfig:
        sections: dict[str, dict[str, Any]] = {}
        for key, value in CHAT_DEFAULTS.items():
            section, name = key.split(".")
            if key == "train.lr" and config.model.lora:
                value = LORA_LR
            if key not in config.explicit:
                sections.setdefault(section, {})[name] = value
        if not sections:
            return config
        changed = {
            s: dataclasses.replace(getattr(config, s), **values) for s, values in sections.items()
        }
        return dataclasses.replace(config, **changed)

    @classmethod
    def read_data(cls, config: RunConfig) -> tuple[TrainingData, list[str]]:
        from trustune.data.conversations import read_conversations

        dc = config.data
        if config.privacy.enabled:
            raise ConfigError(
                "--dp-epsilon is not available for causal-lm runs yet; train without it"
            )
        if config.privacy.redact_pii:
            raise ConfigError(
                "--redact-pii is not available for causal-lm runs yet; train without it"
            )
        assert dc.train_file is not None
        chat = read_conversations(
            dc.train_file, skip_bad_rows=dc.skip_bad_rows, max_chars=dc.max_chars
        )
        columns = Columns(text=",".join(chat.info["columns"].values()), label=chat.format.value)
        train = labeled_part(chat)
        if dc.validation_file is not None:
            held = read_conversations(
                dc.validation_file, format=chat.format, skip_bad_rows=dc.skip_bad_rows,
                max_chars=dc.max_chars,
            )  # fmt: skip
            validation = labeled_part(held)
            validation.info["source"] = f"validation file {dc.validation_file}"
            data = TrainingData(train=train, validation=validation, columns=columns)
        else:
            data = with_validation(
                train, columns, stratified=False, validation_fraction=dc.validation_fraction,
                seed=config.train.seed,
            )  # fmt: skip
        notes = [f"{len(chat)} examples in the {chat.format.value} format"]
        return data, notes

    @classmethod
    def fit(cls, data: TrainingData, config: RunConfig) -> CausalLM:
        if config.task.loss not in (Loss.AUTO, *cls.losses):
            raise ConfigError(
                f"--loss {config.task.loss.value} is not a causal-lm loss; use cross-entropy "
                "(or auto)"
            )
        mc = config.model
        lora = None
        if mc.lora:
            alpha = mc.lora_alpha if mc.lora_alpha is not None else 2 * mc.lora_r
            lora = {"r": mc.lora_r, "alpha": alpha, "dropout": mc.lora_dropout}
        return cls(data_format=str(data.train.info.get("format", "chat")), lora=lora)

    @classmethod
    def from_manifest(cls, manifest: Manifest) -> CausalLM:
        section = manifest.generation or {}
        return cls(
            data_format=str(section.get("format", "chat")),
            template_added=bool(section.get("template_added", False)),
        )

    def encode(self, part: LabeledData, *, source: str) -> None:
        return None  # the targets are tokens: encode_inputs fills them

    # -- the model --------------------------------------------------------------------------

    def head(self) -> dict[str, Any]:
        return {}

    @property
    def outputs(self) -> int:
        return 2  # per example: summed token loss, trained tokens

    def load_model(self, resolved: ResolvedModel, *, attn_implementation: str | None) -> Any:
        from trustune.models import load_causal_lm

        model = load_causal_lm(resolved, attn_implementation=attn_implementation)
        embeddings = model.get_input_embeddings().weight.shape[0]
        if self._vocabulary is not None and self._vocabulary > embeddings:
            model.resize_token_embeddings(self._vocabulary)  # the default template's tokens
        if self.lora is not None:
            model = self._with_adapters(model)
        return model

    def _with_adapters(self, model: Any) -> Any:
        """The model with LoRA adapters on its attention and MLP projections (peft)."""
        from trustune.models import lora_target_modules

        try:
            from peft import LoraConfig, get_peft_model
        except ImportError:
            raise ConfigError("--lora needs peft: pip install 'trustune[chat]'") from None
        assert self.lora is not None
        targets = lora_target_modules(model)
        self.lora["target_modules"] = targets
        config = LoraConfig(
            r=int(self.lora["r"]), lora_alpha=round(float(self.lora["alpha"])),
            lora_dropout=float(self.lora["dropout"]), target_modules=targets,
            task_type="CAUSAL_LM",
        )  # fmt: skip
        return get_peft_model(model, config)

    def finish(self, model: torch.nn.Module) -> torch.nn.Module | None:
        """LoRA: the adapters merged into the base weights (a plain checkpoint is saved)."""
        if self.lora is None or not hasattr(model, "merge_and_unload"):
            return None
        return model.merge_and_unload()  # type: ignore[operator, no-any-return]

    def load_tokenizer(self, resolved: ResolvedModel) -> Any:
        from trustune.data import ensure_chat_template
        from trustune.models import load_chat_tokenizer

        tokenizer = load_chat_tokenizer(resolved, padding_side="right")
        self.template_added = ensure_chat_template(tokenizer).template_added
        self._vocabulary = len(tokenizer)
        return tokenizer

    def encode_inputs(self, tokenizer: Any, part: LabeledData, *, max_length: int) -> Encoded:
        from trustune.data import ChatData, ChatFormat, encode_chat_data

        chat = ChatData(
            format=ChatFormat(self.data_format),
            examples=list(part.examples or part.texts),
            rows=list(range(1, len(part) + 1)),
            info=dict(part.info),
        )
        encoded = encode_chat_data(chat, tokenizer, max_length=max_length)
        if len(encoded) != len(part):
            raise ConfigError("split windows are not supported for training; shorten the texts")
        part.labels = [e.labels for e in encoded.examples]
        part.info["trained_tokens"] = int(sum(e.trained_tokens for e in encoded.examples))
        return Encoded(
            input_ids=[e.input_ids for e in encoded.examples], truncated=0, segments=False
        )

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        summed, counted = token_losses(logits, targets)
        return summed / counted.clamp(min=1)

    def compute_outputs(
        self, model: Any, encoded: Encoded, targets: Sequence[Any], *, batch_size: int,
        pad_id: int, device: Any = "cpu",
    ) -> np.ndarray:  # fmt: skip
        """(summed token loss, trained tokens) per example, in input order."""
        out = np.zeros((len(encoded), 2), dtype=np.float64)
        order = sorted(range(len(encoded)), key=lambda i: len(encoded.input_ids[i]))
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            batch = collate(
                [encoded.input_ids[i] for i in idx], pad_id=pad_id,
                labels=[list(targets[i]) for i in idx], segments=False,
            )  # fmt: skip
            labels = batch.pop("labels").to(device)
            with torch.no_grad():
                logits = model(**{k: v.to(device) for k, v in batch.items()}).logits
            summed, counted = token_losses(logits, labels)
            out[idx, 0] = summed.double().cpu().numpy()
            out[idx, 1] = counted.cpu().numpy()
        return out

    # -- metrics ----------------------------------------------------------------------------

    def quick_metrics(self, targets: Any, logits: np.ndarray) -> dict[str, float]:
        tokens = float(logits[:, 1].sum())
        loss = float(logits[:, 0].sum()) / max(tokens, 1.0)
        return {"loss": loss, "perplexity": math.exp(min(loss, 50.0))}

    def metrics(self, targets: Sequence[Any], logits: np.ndarray) -> dict[str, Any]:
        return {
            **self.quick_metrics(targets, logits),
            "tokens": int(logits[:, 1].sum()),
            "examples": len(logits),
        }

    def manifest_section(self) -> dict[str, Any]:
        section: dict[str, Any] = {
            "format": self.data_format,
            "template_added": self.template_added,
        }
        if self.lora is not None:
            section["lora"] = {**self.lora, "merged": True}
        return {"generation": section}

    def describe(self) -> str:
        return f"{self.name}, {self.data_format} examples"
