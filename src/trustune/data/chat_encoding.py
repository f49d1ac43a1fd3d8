"""Token ids and labels for causal language models: conversations rendered with the tokenizer's
chat template, loss on the assistant's tokens only.

Labels are the input ids where the model is trained and ``-100`` (:data:`IGNORE_INDEX`)
elsewhere; the loss shifts them by one as usual. What is trained:

- a conversation: each assistant reply (its text and the template's end-of-turn token, not the
  whitespace the template writes after it); system and user turns, the template's headers and
  an assistant message that opens the conversation are context only;
- a prompt and completion: the completion and the end-of-sequence token after it (prompt and
  completion are tokenized apart, as a prompt is at generation);
- a plain text: every token, and the end-of-sequence token after it.

Where the assistant's tokens are: a template with ``{% generation %}`` markers says so itself
(transformers' ``return_assistant_tokens_mask``); for any other (ChatML, Llama 3, ...), each
reply is found by rendering the conversation up to it, with the generation prompt and through
it, and checking both are prefixes of the whole rendering, token for token. Text that spells a
control token (``<|im_end|>`` inside a message) is encoded as plain text, never as the token
(transformers' ``sanitize_control_tokens``).

A base model without a chat template gets :data:`DEFAULT_CHAT_TEMPLATE` (ChatML, as SmolLM2,
Qwen and many others use) from :func:`ensure_chat_template`, with ``<|im_start|>`` and
``<|im_end|>`` added as special tokens where the vocabulary lacks them (the caller then resizes
the model's embeddings; ``<|im_end|>`` ends a turn, so generation stops on it).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np

from trustune.data.conversations import ChatData, ChatExample, ChatFormat, Completion, Conversation
from trustune.errors import ConfigError, DataError, ModelError
from trustune.messages import shortened

__all__ = [
    "CHATML_TOKENS",
    "DEFAULT_CHAT_TEMPLATE",
    "IGNORE_INDEX",
    "EncodedChat",
    "Overflow",
    "TemplateSetup",
    "TokenizedExample",
    "chat_prompt_ids",
    "encode_chat_data",
    "encode_example",
    "ensure_chat_template",
]

IGNORE_INDEX = -100  # a label the loss skips (PyTorch's cross-entropy ignore_index)
CHATML_TOKENS = ("<|im_start|>", "<|im_end|>")
#: ChatML: ``<|im_start|>ROLE\nCONTENT<|im_end|>\n`` per message, ``<|im_start|>assistant\n``
#: as the generation prompt; no system message is added.
DEFAULT_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
_GENERATION_MARKER = re.compile(r"\{%-?\s*generation\s*-?%\}")


class Overflow(StrEnum):
    """What to do with an example longer than the context."""

    ERROR = "error"  # refuse, naming the rows
    TRUNCATE = "truncate"  # keep the first max_length tokens
    SPLIT = "split"  # plain texts only: consecutive windows of max_length tokens

    @classmethod
    def list(cls) -> list[str]:
        return [o.value for o in cls]


@dataclass(frozen=True)
class TemplateSetup:
    """What :func:`ensure_chat_template` changed in a tokenizer."""

    template_added: bool  # the default ChatML template was set
    tokens_added: tuple[str, ...]  # new special tokens: resize the model's embeddings
    end_of_turn: str | None  # the token that ends an assistant turn, where known


def ensure_chat_template(tokenizer: Any) -> TemplateSetup:
    """Give a tokenizer without a chat template the default ChatML one (see the module)."""
    if tokenizer.chat_template:
        return TemplateSetup(template_added=False, tokens_added=(), end_of_turn=None)
    from tokenizers import AddedToken

    missing = [t for t in CHATML_TOKENS if t not in tokenizer.added_tokens_encoder]
    if missing:
        tokenizer.add_tokens(
            [AddedToken(t, special=True, normalized=False) for t in missing], special_tokens=True
        )
    tokenizer.chat_template = DEFAULT_CHAT_TEMPLATE
    return TemplateSetup(template_added=True, tokens_added=tuple(missing), end_of_turn="<|im_end|>")


@dataclass(frozen=True)
class TokenizedExample:
    """One training example: token ids, and labels (``IGNORE_INDEX`` where nothing is learned)."""

    input_ids: list[int]
    labels: list[int]

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def trained_tokens(self) -> int:
        return sum(label != IGNORE_INDEX for label in self.labels)


@dataclass
class EncodedChat:
    """The examples of a :class:`ChatData` as token ids and labels, with their rows and facts."""

    examples: list[TokenizedExample]
    rows: list[int]  # the data row (from 1) of each example; a split text repeats its row
    info: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.examples)


def _render_ids(tokenizer: Any, messages: list[dict[str, str]], *, prompt: bool) -> list[int]:
    ids = tokenizer.apply_chat_template(
        messages, tokenize=True, return_dict=False, add_generation_prompt=prompt,
        sanitize_control_tokens=True,
    )  # fmt: skip
    return [int(i) for i in ids]


def chat_prompt_ids(tokenizer: Any, messages: Sequence[dict[str, str]]) -> list[int]:
    """The ids of a conversation rendered for the assistant's next reply (generation prompt
    added, control tokens in the messages encoded as text): what ``generate`` starts from."""
    _require_template(tokenizer)
    return _render_ids(tokenizer, list(messages), prompt=True)


def _require_template(tokenizer: Any) -> None:
    if not tokenizer.chat_template:
        raise ModelError(
            "the tokenizer has no chat template; give it the default ChatML one first "
            "(trustune.data.ensure_chat_template)"
        )


class _NotIncremental(Exception):
    """The template renders earlier turns differently once later ones are added."""


def _blank(tokenizer: Any, token_id: int, special: set[int]) -> bool:
    return token_id not in special and not tokenizer.decode([token_id]).strip()


def _replies(conversation: Conversation) -> list[int]:
    """The positions of the trained replies: assistant messages after another message."""
    return [i for i, (role, _) in enumerate(conversation.messages) if role == "assistant" and i]


def _token_spans(tokenizer: Any, messages: list[dict[str, str]], full: list[int],
                 replies: list[int]) -> list[tuple[int, int]]:  # fmt: skip
    """Each reply's tokens, as the ids of the conversation rendered up to it and through it."""
    found = []
    for i in replies:
        before = _render_ids(tokenizer, messages[:i], prompt=True)
        through = full if i == len(messages) - 1 else _render_ids(
            tokenizer, messages[: i + 1], prompt=False
        )  # fmt: skip
        if full[: len(before)] != before or full[: len(through)] != through:
            raise _NotIncremental
        found.append((len(before), len(through)))
    return found


def _offset_spans(tokenizer: Any, messages: list[dict[str, str]], full: list[int],
                  replies: list[int]) -> list[tuple[int, int]]:  # fmt: skip
    """Each reply's tokens by character offsets, where the token prefixes differ only because
    a merge crosses a turn's edge (a reply that starts with a newline after the template's)."""
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    if [int(i) for i in encoded["input_ids"]] != full:  # a message spells a control token
        raise _NotIncremental
    starts = [int(a) for a, _ in encoded["offset_mapping"]]
    found = []
    for i in replies:
        before = tokenizer.apply_chat_template(
            messages[:i], tokenize=False, add_generation_prompt=True
        )
        through = tokenizer.apply_chat_template(messages[: i + 1], tokenize=False)
        if not (text.startswith(before) and text.startswith(through)):
            raise _NotIncremental
        inside = [j for j, a in enumerate(starts) if len(before) <= a < len(through)]
        if not inside:
            raise _NotIncremental
        found.append((inside[0], inside[-1] + 1))
    return found


def _incremental(tokenizer: Any, conversation: Conversation) -> TokenizedExample:
    messages = conversation.as_dicts()
    full = _render_ids(tokenizer, messages, prompt=False)
    replies = _replies(conversation)
    try:
        found = _token_spans(tokenizer, messages, full, replies)
    except _NotIncremental:
        found = _offset_spans(tokenizer, messages, full, replies)
    labels = [IGNORE_INDEX] * len(full)
    special = set(tokenizer.all_special_ids)
    for start, end in found:
        if end <= start:
            raise _NotIncremental
        while end > start + 1 and _blank(tokenizer, full[end - 1], special):
            end -= 1  # the newline a template writes after the end-of-turn token
        labels[start:end] = full[start:end]
    return TokenizedExample(input_ids=full, labels=labels)


def _marked(tokenizer: Any, conversation: Conversation) -> TokenizedExample | None:
    """The assistant mask of a template with generation markers; None where a message spells
    a control token (the sanitised rendering differs from the marked one)."""
    messages = conversation.as_dicts()
    out = tokenizer.apply_chat_template(
        messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
    )
    ids = [int(i) for i in out["input_ids"]]
    if ids != _render_ids(tokenizer, messages, prompt=False):
        return None
    labels = [i if m else IGNORE_INDEX for i, m in zip(ids, out["assistant_masks"], strict=True)]
    return TokenizedExample(input_ids=ids, labels=labels)


def _encode_text_ids(tokenizer: Any, text: str, *, special: bool) -> list[int]:
    # split_special_tokens: a control token spelt in the data is text, not the token
    encoded = tokenizer(text, add_special_tokens=special, split_special_tokens=True)
    return [int(i) for i in encoded["input_ids"]]


def _with_eos(tokenizer: Any, ids: list[int]) -> list[int]:
    eos = tokenizer.eos_token_id
    return [*ids, int(eos)] if eos is not None and (not ids or ids[-1] != eos) else ids


def encode_example(tokenizer: Any, example: ChatExample, *, row: int = 1) -> TokenizedExample:
    """One example as ids and labels (see the module for what is trained); ``row`` names it in
    errors."""
    if isinstance(example, str):
        ids = _with_eos(tokenizer, _encode_text_ids(tokenizer, example, special=True))
        return TokenizedExample(input_ids=ids, labels=list(ids))
    if isinstance(example, Completion):
        prompt = _encode_text_ids(tokenizer, example.prompt, special=True)
        completion = _with_eos(
            tokenizer, _encode_text_ids(tokenizer, example.completion, special=False)
        )
        return TokenizedExample(
            input_ids=prompt + completion, labels=[IGNORE_INDEX] * len(prompt) + completion
        )
    return _encode_conversation(tokenizer, example, row=row)


def _encode_conversation(
    tokenizer: Any, conversation: Conversation, *, row: int
) -> TokenizedExample:
    _require_template(tokenizer)
    import jinja2

    try:
        if _GENERATION_MARKER.search(tokenizer.chat_template or ""):
            encoded = _marked(tokenizer, conversation)
            if encoded is None:
                raise DataError(
                    f"row {row}: a message spells one of the chat template's control tokens; "
                    "remove it (this template's assistant markers cannot encode it as text)"
                )
            return encoded
        return _incremental(tokenizer, conversation)
    except DataError:
        raise
    except _NotIncremental:
        raise ModelError(
            f"row {row}: the chat template renders earlier turns differently once later ones "
            "are added, so the assistant's tokens cannot be found; use a template that marks "
            "them with {% generation %}"
        ) from None
    except jinja2.TemplateError as e:
        raise DataError(
            f"row {row}: the chat template refuses this conversation: {shortened(str(e), limit=200)}"
        ) from None
    except ValueError as e:  # a control token the tokenizer also makes from plain text
        raise DataError(f"row {row}: {shortened(str(e), limit=200)}") from None


def _listed(rows: Sequence[int]) -> str:
    return ", ".join(str(r) for r in rows[:8]) + (" ..." if len(rows) > 8 else "")


def encode_chat_data(
    data: ChatData, tokenizer: Any, *, max_length: int, overflow: Overflow | str = Overflow.ERROR,
    source: str | None = None,
) -> EncodedChat:  # fmt: skip
    """Every example of ``data`` as ids and labels, at most ``max_length`` tokens each.

    ``overflow``: ``error`` refuses longer examples naming their rows, ``truncate`` keeps their
    first ``max_length`` tokens, ``split`` (plain text only) cuts texts into consecutive windows.
    An example left with nothing to learn (truncated before the first assistant token) is
    refused. ``source`` names the data in messages (default: its path).
    """
    try:
        overflow = Overflow(overflow)
    except ValueError:
        raise ConfigError(
            f"unknown overflow {overflow!r}; choose between {Overflow.list()}"
        ) from None
    if max_length < 2:
        raise ConfigError(f"max_length must be at least 2 tokens, got {max_length}")
    where = source or str(data.info.get("path", "the data"))
    if overflow is Overflow.SPLIT and data.format is not ChatFormat.TEXT:
        raise ConfigError(
            f"overflow 'split' applies to plain text, but {where} holds {data.format.value} "
            "examples; use 'truncate' or 'error'"
        )
    encoded = [
        encode_example(tokenizer, e, row=r) for e, r in zip(data.examples, data.rows, strict=True)
    ]
    long = [(r, len(e)) for e, r in zip(encoded, data.rows, strict=True) if len(e) > max_length]
    if long and overflow is Overflow.ERROR:
        longest = max(n for _, n in long)
        split = ", 'split' (windows)" if data.format is ChatFormat.TEXT else ""
        raise DataError(
            f"{where}: {len(long)} example(s) are longer than the context of {max_length} "
            f"tokens (data rows {_listed([r for r, _ in long])}; the longest has {longest}). "
            f"Shorten them, raise max_length, or set overflow to 'truncate'{split}"
        )
    examples: list[TokenizedExample] = []
    rows: list[int] = []
    for example, row in zip(encoded, data.rows, strict=True):
        if overflow is Overflow.SPLIT and len(example) > max_length:
            for start in range(0, len(example), max_length):
                window = example.input_ids[start : start + max_length]
                if len(window) > 1:  # a single token has nothing to predict
                    examples.append(TokenizedExample(input_ids=window, labels=list(window)))
                    rows.append(row)
            continue
        if len(example) > max_length:
            example = TokenizedExample(example.input_ids[:max_length], example.labels[:max_length])
        examples.append(example)
        rows.append(row)
    if not examples:
        raise DataError(f"{where} has no examples to encode")
    empty = sorted({r for e, r in zip(examples, rows, strict=True) if not e.trained_tokens})
    if empty:
        raise DataError(
            f"{where}: {len(empty)} example(s) have no token left to learn after truncation to "
            f"{max_length} tokens (data rows {_listed(empty)}); shorten their first turns or "
            "raise max_length"
        )
    lengths = np.array([len(e) for e in examples], dtype=np.int64)
    info = {
        "examples": len(examples),
        "tokens": int(lengths.sum()),
        "trained_tokens": int(sum(e.trained_tokens for e in examples)),
        "max_tokens": int(lengths.max()),
        "p95_tokens": float(np.percentile(lengths, 95)),
        "truncated": len(long) if overflow is Overflow.TRUNCATE else 0,
        "split": len(long) if overflow is Overflow.SPLIT else 0,
        "max_length": max_length,
    }
    return EncodedChat(examples=examples, rows=rows, info=info)
