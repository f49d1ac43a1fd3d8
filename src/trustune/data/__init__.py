"""Labeled data: readers by format, column detection, label maps, splits, fingerprints."""

from __future__ import annotations

from trustune.data.columns import Columns, detect_columns
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
    "Columns",
    "LabelMap",
    "LabeledData",
    "TrainingData",
    "canonical_label",
    "detect_columns",
    "file_sha256",
    "known_formats",
    "load_inputs",
    "load_texts",
    "load_training_data",
    "read_labeled",
    "read_table",
    "read_training_file",
    "register_reader",
    "with_validation",
]
