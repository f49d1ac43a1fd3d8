"""Privacy: DP-SGD training (Opacus), its accountant, PII redaction and the membership audit."""

from __future__ import annotations

from trustune.privacy.accountant import (
    PrivacyAccountant,
    default_delta,
    epsilon_spent,
    noise_for_epsilon,
)
from trustune.privacy.redact import RedactionResult, redact_texts

__all__ = [
    "PrivacyAccountant",
    "RedactionResult",
    "default_delta",
    "epsilon_spent",
    "noise_for_epsilon",
    "redact_texts",
]
