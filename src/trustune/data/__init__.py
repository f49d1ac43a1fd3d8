"""Labeled data: readers by format, column detection, label maps, splits, fingerprints; and
conversations and texts for causal language models (formats, chat templates, assistant labels)."""

from __future__ import annotations

from trustune.data.chat_encoding import (
    DEFAULT_CHAT_TEMPLATE,
    IGNORE_INDEX,
    EncodedChat,
    Overflow,
    TemplateSetup,
    TokenizedExample,
    chat_prompt_ids,
    encode_chat_data,
    encode_example,
    ensure_chat_template,
)
from trustune.data.columns import Columns, detect_columns
from trustune.data.conversations import (
    ChatData,
    ChatExample,
    ChatFormat,
    Completion,
    Conversation,
    detect_chat_format,
    matching_formats,
    read_conversations,
)
from trustune.data.dataset import (
    LabeledData,
    TrainingData,
    file_sha256,
    load_inputs,
    load_texts,
    load_training_data,
    read_labeled,
    read_training_file,
    with_validation,
)
from trustune.data.labels import LabelMap, canonical_label
from trustune.data.readers import known_formats, read_table, register_reader

__all__ = [
    "DEFAULT_CHAT_TEMPLATE",
    "IGNORE_INDEX",
    "ChatData",
    "ChatExample",
    "ChatFormat",
    "Columns",
    "Completion",
    "Conversation",
    "EncodedChat",
    "LabelMap",
    "LabeledData",
    "Overflow",
    "TemplateSetup",
    "TokenizedExample",
    "TrainingData",
    "canonical_label",
    "chat_prompt_ids",
    "detect_chat_format",
    "detect_columns",
    "encode_chat_data",
    "encode_example",
    "ensure_chat_template",
    "file_sha256",
    "known_formats",
    "load_inputs",
    "load_texts",
    "load_training_data",
    "matching_formats",
    "read_conversations",
    "read_labeled",
    "read_table",
    "read_training_file",
    "register_reader",
    "with_validation",
]
