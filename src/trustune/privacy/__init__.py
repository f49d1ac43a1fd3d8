"""Privacy: DP-SGD training (Opacus), its accountant, PII redaction and the membership audit.

The training loop reaches DP-SGD through this package only: :class:`PrivateStep` (its step
strategy), :func:`manifest_section` (the run's ``privacy`` record) and
:func:`redact_training_data`; import-linter keeps ``trustune.train`` off the submodules.
"""

from __future__ import annotations

from trustune.privacy.accountant import (
    PrivacyAccountant,
    default_delta,
    epsilon_spent,
    noise_for_epsilon,
)
from trustune.privacy.engine import manifest_section
from trustune.privacy.redact import RedactionResult, redact_texts, redact_training_data
from trustune.privacy.step import PrivateStep

__all__ = [
    "PrivacyAccountant",
    "PrivateStep",
    "RedactionResult",
    "default_delta",
    "epsilon_spent",
    "manifest_section",
    "noise_for_epsilon",
    "redact_texts",
    "redact_training_data",
]
