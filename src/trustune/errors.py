"""The one exception tree of trustune.

Every error a user can cause derives from :class:`TrustuneError`; the CLI turns
it into a one-line message and exit code 2 (a traceback only with ``--debug``).

    TrustuneError
    ├── ConfigError            bad or unknown configuration key / value
    │   └── PrivacyError       a setting that would break the differential-privacy guarantee
    ├── DataError              the labeled data cannot be used as given
    │   ├── DataFileError      missing file, unknown format, unreadable file
    │   ├── ColumnError        no such column, ambiguous columns
    │   └── LabelError         one class only, labels unseen in training
    ├── ModelError             the model cannot be resolved or loaded
    │   └── UnsafeModelError   pickle weights, remote code: refused by policy
    ├── ArtifactError          a run folder is missing, incomplete or would be overwritten
    ├── CheckpointError        no checkpoint to resume, or it does not match the run
    ├── SecurityError          an artifact cannot be encrypted, decrypted, signed or verified
    │   ├── MissingKeyError    an encrypted run but no key, or a key file that does not exist
    │   ├── WrongKeyError      the key or passphrase does not open this artifact
    │   ├── IntegrityError     a sealed file, the manifest or a hash does not match: changed,
    │   │                      truncated, reordered, missing or extra
    │   └── SignatureError     no signature, or it does not verify with the given public key
    ├── StoreError             the key/audit database cannot be opened, or a key or role is unknown
    ├── CompressionError       a model cannot be compressed (an export or quantization failed),
    │   │                      or the result loses more than --max-drop; nothing was written
    │   └── AccuracyDropError  the accuracy guard refused the compressed model
    ├── StopTraining           not a failure: a loop observer (a tuner's pruner, ...) asks the
    │                          loop to stop; it ends like early stopping, with the best checkpoint
    └── TrainingInterrupted    Ctrl-C: a checkpoint was saved, resume with --resume
"""

from __future__ import annotations

__all__ = [
    "AccuracyDropError",
    "ArtifactError",
    "CheckpointError",
    "ColumnError",
    "CompressionError",
    "ConfigError",
    "DataError",
    "DataFileError",
    "IntegrityError",
    "LabelError",
    "MissingKeyError",
    "ModelError",
    "PrivacyError",
    "SecurityError",
    "SignatureError",
    "StopTraining",
    "StoreError",
    "TrainingInterrupted",
    "TrustuneError",
    "UnsafeModelError",
    "WrongKeyError",
]


class TrustuneError(Exception):
    """Base class of every error trustune raises on purpose."""

    exit_code: int = 2


class ConfigError(TrustuneError, ValueError):
    """A configuration key or value is not allowed."""


class PrivacyError(ConfigError):
    """A setting or input would silently break the differential-privacy guarantee."""


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


class SecurityError(TrustuneError):
    """An artifact cannot be encrypted, decrypted, signed or verified (never shows key bytes)."""


class MissingKeyError(SecurityError):
    """A key is needed but none was given, or the key file does not exist."""


class WrongKeyError(SecurityError):
    """The key or passphrase given does not open this artifact."""


class IntegrityError(SecurityError):
    """Sealed data or recorded hashes do not match: the artifact was changed or damaged."""


class SignatureError(SecurityError):
    """The manifest has no signature, or it does not verify with the given public key."""


class StoreError(TrustuneError):
    """The key/audit database cannot be used, or a key id, role or limit is not valid."""


class CompressionError(TrustuneError):
    """A model cannot be compressed as asked; the parent run is untouched and nothing written."""


class AccuracyDropError(CompressionError):
    """The compressed model's main metric fell more than ``--max-drop`` below the parent's."""


class StopTraining(TrustuneError):
    """Raised by a loop observer to end training early (the loop catches it; the run is written
    from the best checkpoint as after early stopping)."""

    def __init__(self, reason: str = "stopped by an observer") -> None:
        super().__init__(reason)
        self.reason = reason


class TrainingInterrupted(TrustuneError):
    """Training was interrupted; the last state was saved as a checkpoint."""

    exit_code = 130
