"""The one exception tree of trustune.

Every error a user can cause derives from :class:`TrustuneError`; the CLI turns
it into a one-line message and exit code 2 (a traceback only with ``--debug``).

    TrustuneError
    ├── ConfigError            bad or unknown configuration key / value
    ├── DataError              the labeled data cannot be used as given
    │   ├── DataFileError      missing file, unknown format, unreadable file
    │   ├── ColumnError        no such column, ambiguous columns
    │   └── LabelError         one class only, labels unseen in training
    ├── ModelError             the model cannot be resolved or loaded
    │   └── UnsafeModelError   pickle weights, remote code: refused by policy
    ├── ArtifactError          a run folder is missing, incomplete or would be overwritten
    ├── CheckpointError        no checkpoint to resume, or it does not match the run
    └── TrainingInterrupted    Ctrl-C: a checkpoint was saved, resume with --resume
"""

from __future__ import annotations

__all__ = [
    "ArtifactError",
    "CheckpointError",
    "ColumnError",
    "ConfigError",
    "DataError",
    "DataFileError",
    "LabelError",
    "ModelError",
    "TrainingInterrupted",
    "TrustuneError",
    "UnsafeModelError",
]


class TrustuneError(Exception):
    """Base class of every error trustune raises on purpose."""

    exit_code: int = 2


class ConfigError(TrustuneError, ValueError):
    """A configuration key or value is not allowed."""


class DataError(TrustuneError, ValueError):
    """The labeled data cannot be used as given."""


class DataFileError(DataError):
    """A data file is missing, unreadable or of an unknown format."""


class ColumnError(DataError):
    """A column is missing or the text/label columns cannot be told apart."""


class LabelError(DataError):
    """The labels cannot train or evaluate a classifier."""


class ModelError(TrustuneError):
    """A model cannot be resolved or loaded."""


class UnsafeModelError(ModelError):
    """A model was refused because loading it could run foreign code."""


class ArtifactError(TrustuneError):
    """A run artifact is missing, incomplete, or would be overwritten."""


class CheckpointError(TrustuneError):
    """A checkpoint cannot be resumed."""


class TrainingInterrupted(TrustuneError):
    """Training was interrupted; the last state was saved as a checkpoint."""

    exit_code = 130
