"""Creating, reopening and repairing the Optuna study of one ``trustune tune`` output folder.

One process works on a folder at a time (an exclusive lock on ``OUTPUT/.tune.lock``, released
by the system even after ``kill -9``). So when a study is reopened, a trial still marked
RUNNING belongs to a process that died: it is marked failed and its parameters are queued
again, as is a trial interrupted with Ctrl-C.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from trustune.errors import ArtifactError
from trustune.tuning.settings import Pruner, TuneSettings

__all__ = ["STUDY_NAME", "create_study", "folder_lock", "requeue_unfinished"]

STUDY_NAME = "trustune"  # one study per database: the default database is OUTPUT/study.db
LOCK_FILE = ".tune.lock"
INTERRUPTED = "interrupted"  # user attribute of a trial ended by Ctrl-C
RETRIED = "retried"  # study attribute: the trials whose parameters were queued again


@contextlib.contextmanager
def folder_lock(output: Path) -> Iterator[None]:
    """Hold ``output``'s lock for the duration; another tune on the same folder is an error."""
    output.mkdir(parents=True, exist_ok=True)
    fd = os.open(output / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ArtifactError(
                f"another trustune tune is running on {output}; wait for it to finish or use "
                "another --output"
            ) from None
        yield
    finally:
        os.close(fd)


def _pruner(settings: TuneSettings) -> Any:
    import optuna

    if settings.pruner is Pruner.MEDIAN:
        return optuna.pruners.MedianPruner(n_startup_trials=settings.pruner_startup)
    if settings.pruner is Pruner.HALVING:
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    return optuna.pruners.NopPruner()


def create_study(storage: Any, settings: TuneSettings, *, attrs: dict[str, Any] | None) -> Any:
    """The folder's study: a new one with ``attrs`` (the base config, the space) stored in it,
    or, with ``attrs=None``, the existing one."""
    import optuna

    sampler = optuna.samplers.TPESampler(
        seed=settings.sampler_seed, n_startup_trials=settings.startup_trials
    )
    if attrs is None:
        return optuna.load_study(
            study_name=STUDY_NAME, storage=storage, sampler=sampler, pruner=_pruner(settings)
        )
    study = optuna.create_study(
        study_name=STUDY_NAME, storage=storage, sampler=sampler, pruner=_pruner(settings),
        direction="maximize",
    )  # fmt: skip
    for key, value in attrs.items():
        study.set_user_attr(key, value)
    return study


def study_exists(storage: Any) -> bool:
    return any(s.study_name == STUDY_NAME for s in storage.get_all_studies())


def requeue_unfinished(study: Any, storage: Any) -> list[int]:
    """Mark trials left RUNNING by a dead process failed, and queue again the parameters of
    those and of trials interrupted by Ctrl-C (each once: the study remembers which it queued).
    Returns the trial numbers queued."""
    from optuna.trial import TrialState

    retried = set(study.user_attrs.get(RETRIED, []))
    queued = []
    for trial in study.get_trials(deepcopy=False):
        stale = trial.state is TrialState.RUNNING
        if stale:
            storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
        interrupted = trial.state is TrialState.FAIL and trial.user_attrs.get(INTERRUPTED)
        if (stale or interrupted) and trial.number not in retried and trial.params:
            study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})
            queued.append(trial.number)
    if queued:
        study.set_user_attr(RETRIED, sorted(retried | set(queued)))
    return queued
