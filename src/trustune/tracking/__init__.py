"""Opt-in experiment tracking: ``--track mlflow[:URI]`` and ``--track tensorboard[:DIR]``.

Nothing is tracked unless asked for: no tracker starts because its library happens to be
installed. :func:`tracking_observers` turns ``--track`` specs into loop observers
(:class:`~trustune.train.observer.RunObserver`), checked before training: an unknown tracker, a
missing library or a tracking URI its library cannot use is a
:class:`~trustune.errors.ConfigError` naming the fix. The libraries are imported only then.
What is recorded is listed in :mod:`trustune.tracking.tracker`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from trustune.errors import ConfigError
from trustune.tracking.registry import known_trackers, register_tracker, tracker_factory
from trustune.tracking.spec import TrackSpec, parse_track_spec, safe_target
from trustune.tracking.tracker import TrackedRun, Tracker

__all__ = [
    "DEFAULT_EXPERIMENT",
    "TrackSpec",
    "TrackedRun",
    "Tracker",
    "known_trackers",
    "parse_track_spec",
    "parse_track_specs",
    "register_tracker",
    "safe_target",
    "tracking_observers",
]

DEFAULT_EXPERIMENT = "trustune"


def parse_track_specs(specs: Sequence[str]) -> list[TrackSpec]:
    """Every ``--track`` value parsed; the same spec twice is refused."""
    known = known_trackers()
    parsed = [parse_track_spec(text, known=known) for text in specs]
    for i, spec in enumerate(parsed):
        if spec in parsed[:i]:
            raise ConfigError(f"--track {spec} is given twice; give each tracker once")
    return parsed


def tracking_observers(
    specs: Sequence[str],
    *,
    run_name: str,
    experiment: str | None = None,
    tags: Mapping[str, str] | None = None,
    warn: Callable[[str], None] | None = None,
) -> list[Tracker]:
    """A tracker per ``--track`` spec, for one run: ``run_name`` names it in the tracker (a run
    folder's name, ``trial-0003``), ``experiment`` groups runs (MLflow's experiment; default
    ``trustune``), ``tags`` are set on it (MLflow). ``warn`` receives the one-line warning of a
    tracker that fails mid-run (default: the ``trustune.tracking`` logger).

    Pass the trackers as ``observers`` to :func:`trustune.finetune` (or to ``train_model``,
    then call :meth:`~trustune.train.observer.Observers.finish` once the run is written).
    An empty ``specs`` gives no trackers and imports no tracking library.
    """
    parsed = parse_track_specs(specs)
    if not parsed:
        return []
    if not run_name.strip():
        raise ConfigError("a tracked run needs a name; give run_name")
    run = TrackedRun(
        name=run_name,
        experiment=experiment or DEFAULT_EXPERIMENT,
        tags=dict(tags or {}),
        **({"warn": warn} if warn is not None else {}),
    )
    return [tracker_factory(spec.kind)(spec.target, run) for spec in parsed]
