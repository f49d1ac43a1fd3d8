"""What a study on private data costs in privacy: every trial trains on the data with DP-SGD,
and choosing the best of them uses all of their results, so the released model's guarantee is
the composition of all trials, not the ε of the one run kept.

Two bounds, both valid for an adaptive search (TPE chooses each trial from the results of the
earlier ones; composition theorems hold for adaptively chosen mechanisms):

- **basic composition**: (Σ εᵢ, Σ δᵢ);
- **accountant composition**: the trials' noisy steps (σ, q, steps of each) composed by the
  run's accountant (PRV, RDP or GDP over the concatenated histories) at the trials' δ, which is
  much tighter for more than a few trials.

The smaller of the two is the study's cost. Papernot & Steinke (ICLR 2022, "Hyperparameter
tuning with Rényi differential privacy") show that a search whose *number of trials is random*
(Poisson or truncated negative binomial) with hyperparameters drawn independently of earlier
results costs only a small multiple of one run; trustune's studies use a fixed number of
adaptively chosen trials, to which that bound does not apply (docs/tuning.md says so).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from trustune.manifest import PrivacyRecord

__all__ = ["StudyPrivacyCost", "study_privacy_cost"]


@dataclass(frozen=True)
class StudyPrivacyCost:
    """The privacy spent by all trials of a study together."""

    trials: int  # private trials that took at least one step
    per_trial_epsilon: tuple[float, ...]
    delta: float  # the δ of the composed guarantee (the trials' δ)
    basic_epsilon: float  # Σ εᵢ
    basic_delta: float  # Σ δᵢ
    composed_epsilon: float  # the accountant over every trial's steps, at ``delta``
    accountant: str

    @property
    def epsilon(self) -> float:
        """The tighter of the two bounds (each holds on its own)."""
        return min(self.basic_epsilon, self.composed_epsilon)

    def to_dict(self) -> dict[str, Any]:
        return {
            "trials": self.trials,
            "per_trial_epsilon": list(self.per_trial_epsilon),
            "delta": self.delta,
            "basic": {"epsilon": self.basic_epsilon, "delta": self.basic_delta},
            "composed": {"epsilon": self.composed_epsilon, "delta": self.delta,
                         "accountant": self.accountant},
            "epsilon": self.epsilon,
        }  # fmt: skip


def study_privacy_cost(records: Sequence[PrivacyRecord]) -> StudyPrivacyCost | None:
    """The cost of the private trials among ``records`` (one per trial, finished or pruned);
    None when no trial was private."""
    private = [r for r in records if r.dp and r.epsilon is not None and r.steps]
    if not private:
        return None
    from trustune.privacy import PrivacyAccountant

    accountant = str(private[0].accountant or "prv")
    delta = max(float(r.delta or 0.0) for r in private)
    history: list[list[float]] = []
    for record in private:
        if record.accountant_history:
            history.extend([float(s), float(q), int(n)] for s, q, n in record.accountant_history)
        else:  # a run that recorded only its totals: one constant (σ, q) over its steps
            history.append(
                [float(record.noise_multiplier or 0), float(record.sample_rate or 0),
                 int(record.steps or 0)]
            )  # fmt: skip
    composed = PrivacyAccountant(accountant)
    composed.load_state_dict({"accountant": accountant, "history": history})
    epsilons = tuple(float(r.epsilon or 0.0) for r in private)
    return StudyPrivacyCost(
        trials=len(private),
        per_trial_epsilon=epsilons,
        delta=delta,
        basic_epsilon=sum(epsilons),
        basic_delta=sum(float(r.delta or 0.0) for r in private),
        composed_epsilon=composed.epsilon(delta),
        accountant=accountant,
    )
