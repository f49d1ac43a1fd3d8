"""Privacy accounting: the ε spent by DP-SGD, and the noise that reaches a target ε.

A thin wrapper over Opacus's accountants (``prv``: privacy random variables, Gopi et al.
2021; ``rdp``: Rényi DP, Mironov 2017) that speaks trustune's config enums and keeps its
state as plain JSON, so a checkpoint holds it without pickle and ε continues on resume.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from trustune.config import Accountant
from trustune.errors import PrivacyError

__all__ = [
    "PrivacyAccountant",
    "default_delta",
    "epsilon_spent",
    "noise_for_epsilon",
    "require_opacus",
]


def require_opacus() -> Any:
    """Import Opacus, or fail with the install hint."""
    try:
        import opacus
    except ImportError as e:
        raise ImportError(
            "differentially private training needs Opacus: pip install 'trustune[privacy]'"
        ) from e
    return opacus


@contextmanager
def _quiet() -> Iterator[None]:
    # RDP's "optimal order is the smallest/largest alpha" hint: the bound is still valid
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Optimal order is the", category=UserWarning)
        yield


def default_delta(train_rows: int) -> float:
    """1/N^1.1: below 1/N, the level at which a mechanism may publish one full record."""
    return float(train_rows**-1.1)


def _create(accountant: Accountant | str) -> Any:
    require_opacus()
    from opacus.accountants import create_accountant

    return create_accountant(mechanism=Accountant.parse(accountant, "privacy.accountant").value)


def epsilon_spent(
    *,
    noise_multiplier: float,
    sample_rate: float,
    steps: int,
    delta: float,
    accountant: Accountant | str = Accountant.PRV,
) -> float:
    """ε after ``steps`` steps of the subsampled Gaussian mechanism (σ, q) at this δ."""
    if steps <= 0:
        return 0.0
    tracker = _create(accountant)
    tracker.history = [(float(noise_multiplier), float(sample_rate), int(steps))]
    with _quiet():
        return float(tracker.get_epsilon(delta=delta))


def noise_for_epsilon(
    *,
    target_epsilon: float,
    delta: float,
    sample_rate: float,
    steps: int,
    accountant: Accountant | str = Accountant.PRV,
) -> float:
    """The noise multiplier σ whose ε after ``steps`` steps is at most ``target_epsilon``."""
    require_opacus()
    from opacus.accountants.utils import get_noise_multiplier

    try:
        with _quiet():
            sigma = get_noise_multiplier(
                target_epsilon=target_epsilon,
                target_delta=delta,
                sample_rate=sample_rate,
                steps=steps,
                accountant=Accountant.parse(accountant, "privacy.accountant").value,
                epsilon_tolerance=min(0.01, target_epsilon / 100),
            )
        return float(sigma)
    except ValueError as e:
        raise PrivacyError(
            f"no noise level reaches ε={target_epsilon} at δ={delta:.3g} over {steps} steps with "
            f"sampling rate {sample_rate:.3g} ({e}); raise --dp-epsilon, or train fewer epochs "
            "or with a smaller batch"
        ) from None


class PrivacyAccountant:
    """The ε spent so far by one training run; its state is JSON (history of (σ, q, steps))."""

    def __init__(self, accountant: Accountant | str = Accountant.PRV) -> None:
        self.kind = Accountant.parse(accountant, "privacy.accountant")
        self._tracker = _create(self.kind)

    @property
    def steps(self) -> int:
        return sum(int(steps) for _, _, steps in self._tracker.history)

    def step(self, *, noise_multiplier: float, sample_rate: float) -> None:
        """One noisy step of the subsampled Gaussian mechanism."""
        self._tracker.step(noise_multiplier=noise_multiplier, sample_rate=sample_rate)

    def epsilon(self, delta: float) -> float:
        """ε spent so far at this δ (0 before the first step)."""
        if not self._tracker.history:
            return 0.0
        with _quiet():
            return float(self._tracker.get_epsilon(delta=delta))

    def state_dict(self) -> dict[str, Any]:
        return {
            "accountant": self.kind.value,
            "history": [[float(s), float(q), int(n)] for s, q, n in self._tracker.history],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("accountant") != self.kind.value:
            raise PrivacyError(
                f"the checkpoint's ε was accounted with {state.get('accountant')!r}, this run uses "
                f"{self.kind.value!r}; resume with the same --accountant"
            )
        self._tracker.history = [(float(s), float(q), int(n)) for s, q, n in state["history"]]
