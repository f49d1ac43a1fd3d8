"""A trained causal-lm run, loaded: text generation and chat (``trustune.load(run).generate``).

Prompts are rendered as the run was trained: a chat run (conversations, instructions) through
its chat template with the generation prompt, a prompt/completion or plain-text run as raw
text. Generation runs transformers' ``generate`` (greedy at temperature 0, else sampling with
``top_p``), stops at the end-of-sequence or end-of-turn token or at a ``stop`` string, and
batches prompts with left padding.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from trustune.errors import ArtifactError, ConfigError, DataError
from trustune.loaded import LoadedRun, check_texts, register_loaded
from trustune.tasks import CausalLM

if TYPE_CHECKING:
    from trustune.progress import Progress

__all__ = ["Generation", "GenerationSettings", "TextGenerator"]

_RAW_FORMATS = ("prompt-completion", "text")  # trained on raw text, not the chat template
_ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class GenerationSettings:
    """How text is generated. ``temperature`` 0: greedy (the same text every time)."""

    max_new_tokens: int = 128
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.max_new_tokens, bool) or not isinstance(self.max_new_tokens, int):
            raise ConfigError(f"max_new_tokens must be a whole number, not {self.max_new_tokens!r}")
        if self.max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens must be >= 1, not {self.max_new_tokens}")
        if not 0 <= float(self.temperature) <= 5:
            raise ConfigError(f"temperature must be between 0 and 5, not {self.temperature!r}")
        if not 0 < float(self.top_p) <= 1:
            raise ConfigError(f"top_p must be in (0, 1], not {self.top_p!r}")


@dataclass(frozen=True)
class Generation:
    """One generated text: the text, its token count, and why it ended (``stop``: an end
    token or stop string; ``length``: ``max_new_tokens``)."""

    text: str
    tokens: int
    finish_reason: str
    prompt_tokens: int = 0
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text, "tokens": self.tokens, "finish_reason": self.finish_reason,
            "prompt_tokens": self.prompt_tokens,
        }  # fmt: skip


def _messages(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    out = []
    for i, message in enumerate(messages):
        role, content = message.get("role"), message.get("content")
        if role not in _ROLES:
            raise DataError(f"message {i + 1} has the role {role!r}; use one of {list(_ROLES)}")
        if not isinstance(content, str):
            raise DataError(f"message {i + 1} has no text content")
        out.append({"role": str(role), "content": content})
    if not out:
        raise DataError("a chat needs at least one message")
    return out


@register_loaded
class TextGenerator(LoadedRun):
    """A fine-tuned causal language model from a run folder (use :func:`trustune.load`)."""

    task_name = CausalLM.name
    task: CausalLM
    causal = True

    @classmethod
    def open_model(cls, model_dir: Path, *, fmt: str, transform: str | None) -> Any:
        from trustune.models import ResolvedModel, load_causal_lm

        if fmt != "transformers" or transform is not None:
            raise ArtifactError(f"{model_dir}: a causal-lm run is stored as transformers weights")
        return load_causal_lm(
            ResolvedModel(source=str(model_dir), location=str(model_dir.resolve()), is_local=True)
        )

    @classmethod
    def open_tokenizer(cls, model_dir: Path) -> Any:
        from trustune.models import ResolvedModel, load_chat_tokenizer

        resolved = ResolvedModel(
            source=str(model_dir), location=str(model_dir.resolve()), is_local=True
        )
        return load_chat_tokenizer(resolved, padding_side="left")

    def _check_parts(self, model: Any, tokenizer: Any, max_length: Any) -> int:
        if not hasattr(model, "generate") or not hasattr(model, "get_output_embeddings"):
            raise ArtifactError(
                f"{self.run_dir}: the manifest says causal-lm but the model is a "
                f"{type(model).__name__}; the manifest and the model are not of the same run"
            )
        vocabulary = model.get_input_embeddings().weight.shape[0]
        if len(tokenizer) > vocabulary:
            raise ArtifactError(
                f"{self.run_dir}: the tokenizer has {len(tokenizer)} tokens but the model "
                f"{vocabulary} embeddings; the model and tokenizer are not of the same run"
            )
        return int(max_length or 512)

    def __repr__(self) -> str:
        return f"TextGenerator(run={str(self.run_dir)!r})"

    @property
    def labels(self) -> tuple[int | str, ...]:
        return ()

    @property
    def chat_format(self) -> bool:
        """Whether prompts go through the chat template (the run learned conversations)."""
        return self.task.data_format not in _RAW_FORMATS

    # -- prompts --------------------------------------------------------------------------

    def _prompt_ids(
        self, prompt: str | Sequence[Mapping[str, Any]], system: str | None
    ) -> list[int]:
        from trustune.data import chat_prompt_ids

        if isinstance(prompt, str):
            if not self.chat_format:
                if system is not None:
                    raise ConfigError("a system prompt needs a chat run; this one learned raw text")
                ids = self.tokenizer(prompt, add_special_tokens=True)["input_ids"]
                return [int(i) for i in ids]
            messages = [{"role": "user", "content": prompt}]
        else:
            messages = _messages(prompt)
        if system is not None and messages[0]["role"] != "system":
            messages = [{"role": "system", "content": system}, *messages]
        return chat_prompt_ids(self.tokenizer, messages)

    @functools.cached_property
    def _stop_ids(self) -> list[int]:
        """The tokens that end an answer: end of sequence, end of turn."""
        ids = []
        for token in (self.tokenizer.eos_token, "<|im_end|>", "<|eot_id|>", "<|endoftext|>"):
            if token is None:
                continue
            tid = self.tokenizer.convert_tokens_to_ids(token)
            if isinstance(tid, int) and tid != self.tokenizer.unk_token_id and tid not in ids:
                ids.append(tid)
        return ids

    def _fit_context(self, ids: list[int], settings: GenerationSettings) -> list[int]:
        room = self.max_length - settings.max_new_tokens
        if room < 1:
            raise ConfigError(
                f"max_new_tokens {settings.max_new_tokens} fills the run's context of "
                f"{self.max_length} tokens; ask for fewer"
            )
        return ids[-room:]  # the most recent part of a long history

    # -- generation -----------------------------------------------------------------------

    def _generate_ids(
        self, prompts: list[list[int]], settings: GenerationSettings, streamer: Any = None
    ) -> list[list[int]]:
        width = max(len(p) for p in prompts)
        pad = self.pad_id
        input_ids = torch.full((len(prompts), width), pad, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, ids in enumerate(prompts):  # left padding: every prompt ends at the same place
            input_ids[row, width - len(ids) :] = torch.as_tensor(ids, dtype=torch.long)
            mask[row, width - len(ids) :] = 1
        sample = float(settings.temperature) > 0
        kwargs: dict[str, Any] = {
            "max_new_tokens": settings.max_new_tokens, "do_sample": sample,
            "eos_token_id": self._stop_ids or None, "pad_token_id": pad,
        }  # fmt: skip
        if sample:
            kwargs.update(temperature=float(settings.temperature), top_p=float(settings.top_p))
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        if settings.seed is not None:
            torch.manual_seed(settings.seed)
        with torch.inference_mode():
            out = self.model.generate(
                input_ids=input_ids, attention_mask=mask, streamer=streamer, **kwargs
            )
        return [row[width:].tolist() for row in out]

    def _finish(
        self, ids: list[int], prompt_tokens: int, settings: GenerationSettings
    ) -> Generation:
        stops = set(self._stop_ids)
        ended = False
        for i, tid in enumerate(ids):
            if tid in stops:
                ids, ended = ids[:i], True
                break
        text = self.tokenizer.decode(ids, skip_special_tokens=True)
        for stop in settings.stop:
            cut = text.find(stop)
            if cut >= 0:
                text, ended = text[:cut], True
        reason = "stop" if ended or len(ids) < settings.max_new_tokens else "length"
        return Generation(
            text=text, tokens=len(ids), finish_reason=reason, prompt_tokens=prompt_tokens
        )

    def generate(
        self, prompts: str | Sequence[str], *, system: str | None = None, batch_size: int = 8,
        **settings: Any,
    ) -> list[Generation]:  # fmt: skip
        """One generated text per prompt, in input order. ``settings``: the fields of
        :class:`GenerationSettings` (``max_new_tokens``, ``temperature``, ``top_p``, ``seed``,
        ``stop``)."""
        chosen = self._settings(settings)
        texts = check_texts([prompts] if isinstance(prompts, str) else list(prompts), "prompt")
        encoded = [self._fit_context(self._prompt_ids(t, system), chosen) for t in texts]
        out: list[Generation | None] = [None] * len(encoded)
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            for i, ids in zip(
                idx, self._generate_ids([encoded[i] for i in idx], chosen), strict=True
            ):
                out[i] = self._finish(ids, len(encoded[i]), chosen)
        return [g for g in out if g is not None]

    def chat(
        self, messages: Sequence[Mapping[str, Any]], *, system: str | None = None, **settings: Any
    ) -> Generation:
        """The assistant's next reply to ``messages`` (``{"role", "content"}`` dicts); the
        oldest turns are dropped when the history is longer than the run's context."""
        if not self.chat_format:
            raise ConfigError(
                f"this run learned {self.task.data_format} examples, not conversations; use "
                "generate() with a prompt"
            )
        chosen = self._settings(settings)
        ids = self._history_ids(list(messages), system, chosen)
        return self._finish(self._generate_ids([ids], chosen)[0], len(ids), chosen)

    def _history_ids(
        self, messages: list[Mapping[str, Any]], system: str | None, settings: GenerationSettings
    ) -> list[int]:
        """The prompt of a conversation, its oldest turns dropped (the system prompt kept)
        until it leaves room for the reply in the context."""
        kept = _messages(messages)
        ids = self._prompt_ids(kept, system)
        room = self.max_length - settings.max_new_tokens
        while len(ids) > room and sum(m["role"] != "system" for m in kept) > 1:
            first = next(i for i, m in enumerate(kept) if m["role"] != "system")
            del kept[first]
            ids = self._prompt_ids(kept, system)
        return self._fit_context(ids, settings)

    def stream(
        self, prompt: str | Sequence[Mapping[str, Any]], *, system: str | None = None,
        **settings: Any,
    ) -> Iterator[str]:  # fmt: skip
        """The reply to one prompt (a text, or chat messages) piece by piece as it is written."""
        from transformers import TextIteratorStreamer

        chosen = self._settings(settings)
        if isinstance(prompt, str):
            ids = self._fit_context(self._prompt_ids(prompt, system), chosen)
        else:
            ids = self._history_ids(list(prompt), system, chosen)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        failure: list[BaseException] = []

        def run() -> None:
            try:
                self._generate_ids([ids], chosen, streamer)
            except BaseException as e:  # re-raised in the reading thread
                failure.append(e)
                streamer.end()

        worker = threading.Thread(target=run, name="trustune-generate", daemon=True)
        worker.start()
        written = ""
        for piece in streamer:
            written += piece
            hit = [written.find(s) for s in chosen.stop if s in written]
            if hit:
                cut = min(hit)
                yield piece[: max(0, len(piece) - (len(written) - cut))]
                break
            yield piece
        worker.join()
        if failure:
            raise failure[0]

    def _settings(self, settings: Mapping[str, Any]) -> GenerationSettings:
        allowed = set(GenerationSettings.__dataclass_fields__)
        unknown = sorted(set(settings) - allowed)
        if unknown:
            raise ConfigError(
                f"unknown generation setting(s) {unknown}. Allowed: {sorted(allowed)}"
            )
        values = dict(settings)
        if isinstance(values.get("stop"), str):
            values["stop"] = (values["stop"],)
        if "stop" in values:
            values["stop"] = tuple(values["stop"] or ())
        return GenerationSettings(**values)

    # -- what every loaded run offers -------------------------------------------------------

    def predict(
        self, texts: Sequence[str] | str, text_pairs: Sequence[str] | str | None = None, *,
        batch_size: int = 8,
    ) -> list[Any]:  # fmt: skip
        """A generated reply per prompt (default settings: greedy, 128 new tokens)."""
        if text_pairs is not None:
            raise DataError("a causal-lm run takes prompts alone; drop text_pairs=")
        return self.generate(texts, batch_size=batch_size)

    def logits(
        self, texts: Sequence[str], text_pairs: Sequence[str] | None = None, *,
        batch_size: int = 32,
    ) -> np.ndarray:  # fmt: skip
        raise ConfigError("a causal-lm run generates text; use generate() or chat()")

    def explain(self, *args: Any, **kwargs: Any) -> Any:
        raise ConfigError("explanations of generated text are not available yet")

    def per_example_loss(self, *args: Any, **kwargs: Any) -> np.ndarray:
        raise ConfigError("the membership audit of causal-lm runs is not available yet")

    def evaluate(
        self, data: str | Path, *, text_column: str | None = None, label_column: str | None = None,
        text_pair_column: str | None = None, skip_bad_rows: bool = False,
        measure_latency: bool = True, batch_size: int = 8, progress: Progress | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        """Held-out loss per token and perplexity on a file of examples (the run's format),
        and the generation speed."""
        from trustune.data import ChatFormat, read_conversations
        from trustune.tasks.causal_lm import labeled_part

        chat = read_conversations(
            data, format=ChatFormat(self.task.data_format), skip_bad_rows=skip_bad_rows
        )
        part = labeled_part(chat)
        encoded = self.task.encode_inputs(self.tokenizer, part, max_length=self.max_length)
        if progress is not None:
            progress.start("evaluate", total=len(part))
        outputs = self.task.compute_outputs(
            self.model, encoded, part.labels, batch_size=batch_size, pad_id=self.pad_id
        )
        if progress is not None:
            progress.advance("evaluate", len(part))
            progress.end("evaluate")
        result = {"data": {k: part.info.get(k) for k in ("path", "sha256", "rows", "skipped_rows")}}
        result.update(self.task.metrics(part.labels, outputs))
        if measure_latency:
            result["speed"] = self.measure_speed(self._sample_prompts(chat.examples))
        return result

    @staticmethod
    def _sample_prompts(examples: Sequence[Any]) -> list[str]:
        from trustune.data import Completion, Conversation

        prompts = []
        for example in examples[:8]:
            if isinstance(example, Conversation):
                users = [c for role, c in example.messages if role == "user"]
                prompts.append(users[0] if users else example.messages[0][1])
            elif isinstance(example, Completion):
                prompts.append(example.prompt)
            else:
                prompts.append(str(example)[:200])
        return [p for p in prompts if p.strip()] or ["Hello"]

    def measure_speed(
        self, texts: Sequence[str], *, pairs: Sequence[str] | None = None
    ) -> dict[str, Any]:
        """Time to the first token and generated tokens per second at batch 1 (greedy, 32 new
        tokens, the median over a few prompts)."""
        prompts = [t[:200] for t in texts[:3] if t.strip()] or ["Hello"]
        settings = GenerationSettings(max_new_tokens=32)
        self._generate_ids(
            [self._prompt_ids(prompts[0], None)], GenerationSettings(max_new_tokens=2)
        )
        first, rates = [], []
        for prompt in prompts:
            ids = self._fit_context(self._prompt_ids(prompt, None), settings)
            start = time.perf_counter()
            self._generate_ids([ids], GenerationSettings(max_new_tokens=1))
            first.append((time.perf_counter() - start) * 1000.0)
            start = time.perf_counter()
            out = self._generate_ids([ids], settings)[0]
            rates.append(len(out) / max(time.perf_counter() - start, 1e-9))
        return {
            "device": "cpu",
            "threads": torch.get_num_threads(),
            "time_to_first_token_ms_p50": round(float(np.median(first)), 3),
            "tokens_per_s": round(float(np.median(rates)), 2),
            "max_new_tokens": settings.max_new_tokens,
        }
