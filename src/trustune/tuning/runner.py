"""``trustune.tune``: a hyperparameter search over fine-tuning runs with Optuna.

Each trial is a normal run (``trustune.finetune``) with the sampled keys set, trained in
``OUTPUT/trials/NNNN``; its validations are reported to the study, whose pruner may end it
early. The best run so far lives in ``OUTPUT/best`` (a complete run folder: predict, serve,
evaluate it as any other); every other trial's folder, checkpoints included, is removed when the
trial ends, its figures staying in the study. After every trial, ``OUTPUT/best.yaml`` (the best
run's whole configuration, for ``trustune train --config``) and ``OUTPUT/tune.json`` (every
trial, the parameter importances, the privacy cost) are rewritten, and the best run's report
gets a "Hyperparameter search" section.

Layout of ``OUTPUT``::

    study.db        the Optuna study (default storage; --storage for another database)
    best/           the best run
    best.yaml       its configuration
    tune.json       the study's summary
    trials/NNNN/    the trial in progress
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from trustune.artifact import atomic_write_json, atomic_write_text, staging_dir, swap_in
from trustune.config import RunConfig
from trustune.errors import ArtifactError, ConfigError, PrivacyError, TrainingInterrupted
from trustune.manifest import PrivacyRecord
from trustune.progress import Progress
from trustune.tuning.privacy_cost import StudyPrivacyCost, study_privacy_cost
from trustune.tuning.pruning import PruningObserver
from trustune.tuning.report import SUMMARY_FILE  # in OUTPUT and OUTPUT/best
from trustune.tuning.settings import TuneSettings
from trustune.tuning.space import (
    SearchSpace,
    default_space,
    describe,
    load_space,
    overrides_of,
    space_from_saved,
    space_to_dict,
)
from trustune.tuning.study import (
    INTERRUPTED,
    create_study,
    folder_lock,
    requeue_unfinished,
    study_exists,
)

if TYPE_CHECKING:
    from trustune.api import Run

__all__ = ["BEST_DIR", "BEST_YAML", "SUMMARY_FILE", "TuneResult", "tune"]

BEST_DIR = "best"
BEST_YAML = "best.yaml"
TRIALS_DIR = "trials"
DB_FILE = "study.db"


@dataclass(frozen=True)
class TuneResult:
    """What a study found: the best run and the whole study's summary."""

    output: Path
    best_run: Path | None
    best_params: Mapping[str, Any]
    best_value: float | None
    metric: str | None
    summary: Mapping[str, Any]

    @property
    def privacy_cost(self) -> Mapping[str, Any] | None:
        """The ε and δ of the whole search (every private trial composed), or None."""
        cost: Mapping[str, Any] | None = self.summary.get("privacy_cost")
        return cost


def _storage_url(output: Path, given: str | None) -> str:
    return given or f"sqlite:///{(output / DB_FILE).resolve()}"


def _trial_privacy(record: PrivacyRecord | None) -> dict[str, Any] | None:
    if record is None or not record.dp:
        return None
    keep = ("epsilon", "delta", "accountant", "noise_multiplier", "sample_rate", "steps",
            "accountant_history", "target_epsilon")  # fmt: skip
    return {k: getattr(record, k) for k in keep}


def _privacy_records(trials: Sequence[Any]) -> list[PrivacyRecord]:
    out = []
    for trial in trials:
        saved = trial.user_attrs.get("privacy")
        if saved:
            history = tuple(tuple(h) for h in saved.get("accountant_history") or ())
            out.append(PrivacyRecord(dp=True, **{**saved, "accountant_history": history}))
    return out


def _summary(study: Any, settings: TuneSettings, space: SearchSpace) -> dict[str, Any]:
    """The study as JSON: settings, space, every trial, the best, importances, privacy cost."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    rows = []
    for t in trials:
        rows.append({
            "number": t.number,
            "state": t.state.name.lower(),
            "params": dict(t.params),
            "value": t.value,
            "metric": t.user_attrs.get("metric"),
            "metric_value": t.user_attrs.get("metric_value"),
            "intermediate": {str(k): v for k, v in sorted(t.intermediate_values.items())},
            "wall_time_s": t.user_attrs.get("wall_time_s"),
            "epsilon": (t.user_attrs.get("privacy") or {}).get("epsilon"),
            "note": t.user_attrs.get("note"),
            "retry_of": t.user_attrs.get("retry_of"),
        })  # fmt: skip
    complete = [t for t in trials if t.state is TrialState.COMPLETE]
    best = max(complete, key=lambda t: t.value) if complete else None
    importances: dict[str, float] = {}
    varied = [k for k in space if len({t.params.get(k) for t in complete}) > 1]
    if len(complete) >= 3 and varied:
        import warnings

        import optuna

        evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                found = optuna.importance.get_param_importances(
                    study, evaluator=evaluator, params=varied
                )
            importances = {k: float(v) for k, v in found.items()}
        except (RuntimeError, ValueError):  # too few distinct trials to fit the evaluator
            importances = {}
    cost: StudyPrivacyCost | None = study_privacy_cost(_privacy_records(trials))
    return {
        "settings": _settings_dict(settings),
        "space": space_to_dict(space),
        "direction": "maximize",
        "trials": rows,
        "counts": {s.name.lower(): sum(t.state is s for t in trials) for s in TrialState},
        "best": None if best is None else {
            "number": best.number, "params": dict(best.params), "value": best.value,
            "metric": best.user_attrs.get("metric"),
            "metric_value": best.user_attrs.get("metric_value"),
        },
        "importances": importances,
        "privacy_cost": None if cost is None else cost.to_dict(),
        "wall_time_s": sum(float(t.user_attrs.get("wall_time_s") or 0) for t in trials),
    }  # fmt: skip


def _write_best_files(output: Path, summary: Mapping[str, Any]) -> None:
    atomic_write_json(output / SUMMARY_FILE, summary)
    best = output / BEST_DIR
    if not (best / "trustune.json").is_file():
        return
    from trustune.artifact import read_metrics
    from trustune.manifest import read_manifest
    from trustune.report.html import write_report

    manifest = read_manifest(best)
    config = {section: dict(values) for section, values in manifest.config.items()}
    header = (
        "# The best configuration of the study in this folder; train it again with\n"
        f"#   trustune train --config {output / BEST_YAML} --output runs/NAME\n"
    )
    atomic_write_text(output / BEST_YAML, header + yaml.safe_dump(config, sort_keys=False))
    atomic_write_json(best / SUMMARY_FILE, summary)
    write_report(best, manifest, read_metrics(best))


def _keep_as_best(folder: Path, output: Path) -> None:
    """Move a trial's run folder to ``OUTPUT/best`` (replacing the previous best in one step)."""
    tmp = staging_dir(output / BEST_DIR)
    tmp.rmdir()
    folder.replace(tmp)
    swap_in(tmp, output / BEST_DIR)


class _Search:
    """The objective and the after-trial callback of one study."""

    def __init__(
        self, *, base: RunConfig, space: SearchSpace, output: Path, settings: TuneSettings,
        progress: Progress | None, track: Sequence[str], experiment: str | None,
    ) -> None:  # fmt: skip
        self.base, self.space, self.output, self.settings = base, space, output, settings
        self.progress, self.track, self.experiment = progress, track, experiment
        self.selection = base.train.selection_metric.value

    def _say(self, text: str) -> None:
        if self.progress is not None:
            self.progress.message(text)

    def objective(self, trial: Any) -> float:
        import optuna

        from trustune.api import finetune
        from trustune.tasks import get_task

        params = {key: param.suggest(trial, key) for key, param in self.space.items()}
        config = self.base.with_overrides(overrides_of(params))
        folder = self.output / TRIALS_DIR / f"{trial.number:04d}"
        shown = " ".join(f"{k.split('.', 1)[1]}={_fmt(v)}" for k, v in params.items())
        self._say(f"trial {trial.number}: {shown}")
        pruning = PruningObserver(trial, selection=self.selection)
        observers: list[Any] = [pruning, *self._trackers(trial.number)]
        started = time.monotonic()
        try:
            run: Run = finetune(
                config=config, output=folder, overwrite=True, progress=self.progress or False,
                measure_latency=False, observers=observers,
            )  # fmt: skip
        except TrainingInterrupted:
            trial.set_user_attr(INTERRUPTED, True)
            raise
        except PrivacyError as e:  # these settings cannot reach the target ε: a failed trial
            trial.set_user_attr("note", str(e))
            raise
        finally:
            trial.set_user_attr("wall_time_s", round(time.monotonic() - started, 2))
        manifest = run.manifest
        training = manifest.training
        metric = training.selection_metric or "loss"
        trial.set_user_attr("metric", metric)
        if training.best_metric is not None:  # the objective in the metric's own sign
            lower = metric in get_task(manifest.task).lower_is_better
            value = float(training.best_metric)
            trial.set_user_attr("metric_value", -value if lower else value)
        trial.set_user_attr("steps", training.steps)
        privacy = _trial_privacy(manifest.privacy)
        if privacy is not None:
            trial.set_user_attr("privacy", privacy)
        if pruning.pruned_at is not None:
            trial.set_user_attr("note", f"pruned at validation {pruning.pruned_at}")
            raise optuna.TrialPruned()
        if training.best_metric is None:
            raise ArtifactError(f"trial {trial.number}: the run recorded no validation metric")
        return float(training.best_metric)

    def _trackers(self, number: int) -> list[Any]:
        if not self.track:
            return []
        from trustune.tracking import tracking_observers

        return list(
            tracking_observers(
                self.track, run_name=f"trial-{number:04d}", experiment=self.experiment,
                tags={"trustune.study": str(self.output)},
            )
        )  # fmt: skip

    def after_trial(self, study: Any, trial: Any) -> None:
        from optuna.trial import TrialState

        folder = self.output / TRIALS_DIR / f"{trial.number:04d}"
        complete = trial.state is TrialState.COMPLETE
        is_best = complete and study.best_trial.number == trial.number
        if is_best and folder.is_dir():
            _keep_as_best(folder, self.output)
        shutil.rmtree(folder, ignore_errors=True)
        _write_best_files(self.output, _summary(study, self.settings, self.space))
        metric = trial.user_attrs.get("metric") or "value"
        figure = trial.user_attrs.get("metric_value")
        took = f"{trial.user_attrs.get('wall_time_s') or 0:.0f} s"
        if complete:
            best = study.best_trial
            self._say(
                f"trial {trial.number} done: {metric} {_fmt(figure)} in {took}"
                + (" (new best)" if is_best else f" (best: trial {best.number}, "
                   f"{_fmt(best.user_attrs.get('metric_value'))})")
            )  # fmt: skip
        elif trial.state is TrialState.PRUNED:
            self._say(f"trial {trial.number} {trial.user_attrs.get('note', 'pruned')} ({took})")
        else:
            self._say(f"trial {trial.number} failed: {trial.user_attrs.get('note', '')}")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _clear(output: Path) -> None:
    for name in (BEST_DIR, TRIALS_DIR):
        shutil.rmtree(output / name, ignore_errors=True)
    for name in (DB_FILE, f"{DB_FILE}-wal", f"{DB_FILE}-shm", BEST_YAML, SUMMARY_FILE):
        (output / name).unlink(missing_ok=True)


def _settings_dict(settings: TuneSettings) -> dict[str, Any]:
    return {**dataclasses.asdict(settings), "pruner": settings.pruner.value}


def _resumed_settings(stored: Mapping[str, Any], given: TuneSettings) -> TuneSettings:
    """The study's own settings, with those ``given`` that differ from the defaults (a resumed
    study keeps its --trials, pruner and seed unless told otherwise)."""
    defaults = _settings_dict(TuneSettings())
    changed = {k: v for k, v in _settings_dict(given).items() if v != defaults[k]}
    known = {k: v for k, v in stored.items() if k in defaults}
    return TuneSettings(**{**defaults, **known, **changed})


def _space_of(base: RunConfig, settings: TuneSettings) -> SearchSpace:
    """--space, or the task's default space less the keys the user set."""
    if settings.space:
        return load_space(settings.space)
    task = None if base.task.type.value == "auto" else base.task.type.value
    space = default_space(task, private=base.privacy.enabled)
    space = {k: p for k, p in space.items() if k not in base.explicit}
    if not space:
        raise ConfigError(
            "nothing to search: every key of the default space was set by a flag; drop one "
            "(--lr, --epochs, ...) or give --space FILE"
        )
    return space


def tune(
    data: str | Path | None = None,
    *,
    validation: str | Path | None = None,
    model: str | None = None,
    config: RunConfig | str | Path | None = None,
    output: str | Path = "runs/tune",
    settings: TuneSettings | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: Progress | None = None,
    track: Sequence[str] = (),
    track_experiment: str | None = None,
    **options: Any,
) -> TuneResult:
    """Search the hyperparameters of ``config``'s run with Optuna (TPE, pruning) and keep the
    best run in ``OUTPUT/best``.

    ``settings``: trials, timeout, pruner, sampler seed, search space file, storage
    (:class:`~trustune.tuning.settings.TuneSettings`). ``resume``: continue the study in
    ``output`` up to ``settings.trials`` trials (its configuration and space are the stored
    ones; trials cut short by Ctrl-C or a killed process run again). ``overwrite``: start over.
    ``track``: ``--track`` specs, each trial a tracked run of its own (``trial-NNNN`` in
    ``track_experiment``). ``data``,
    ``validation``, ``model``, ``config`` and ``options`` (the keywords of
    :func:`trustune.finetune`: ``epochs``, ``dp_epsilon``, ...) make the base configuration
    that every trial starts from; the searched keys override it.
    """
    import optuna

    from trustune.api import run_config
    from trustune.store.studies import study_storage

    settings = settings or TuneSettings()
    output = Path(output)
    given = any(v is not None for v in (data, validation, model, config)) or bool(options)
    base_config = (
        run_config(config, data=data, validation=validation, model=model, **options)
        if given
        else None
    )
    if resume and overwrite:
        raise ConfigError("--resume and --overwrite contradict each other; pass one")
    if output.exists() and not output.is_dir():
        raise ArtifactError(f"--output {output} is a file; give a folder for the study")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if resume and base_config is not None:
        raise ConfigError(
            "--resume continues the configuration stored in the study; drop the data and "
            "training flags (only --trials and --timeout may change)"
        )
    if resume and settings.storage is None and not (output / DB_FILE).is_file():
        raise ArtifactError(f"no study to resume in {output}; run without --resume")
    space: SearchSpace = {}
    base = base_config or RunConfig()
    if not resume:
        space = _space_of(base, settings)
    with folder_lock(output):
        if overwrite:
            _clear(output)
        storage = study_storage(_storage_url(output, settings.storage))
        exists = study_exists(storage)
        if exists and not resume:
            raise ArtifactError(
                f"{output} holds a study already; pass --resume to continue it or --overwrite "
                "to start over"
            )
        if resume and not exists:
            raise ArtifactError(f"no study to resume in {output}; run without --resume")
        if resume:
            study = create_study(storage, settings, attrs=None)
            base = RunConfig.from_dict(study.user_attrs["config"], source="the stored study")
            base = dataclasses.replace(base, explicit=frozenset(study.user_attrs["explicit"]))
            space = space_from_saved(study.user_attrs["space"])
            settings = _resumed_settings(study.user_attrs.get("settings") or {}, settings)
            queued = requeue_unfinished(study, storage)
            if queued and progress is not None:
                progress.message(f"trials {queued} were cut short; they run again")
        else:
            attrs = {"config": base.to_dict(), "explicit": sorted(base.explicit),
                     "space": space_to_dict(space), "settings": _settings_dict(settings)}  # fmt: skip
            study = create_study(storage, settings, attrs=attrs)
        if progress is not None:
            progress.message("searching " + "; ".join(describe(space)))
        from optuna.trial import TrialState

        # trials that count: finished, pruned, or failed on their own settings (a target ε
        # they cannot reach); not those cut short, which run again
        done = sum(
            t.state in (TrialState.COMPLETE, TrialState.PRUNED)
            or (t.state is TrialState.FAIL and bool(t.user_attrs.get("note")))
            for t in study.get_trials(deepcopy=False)
        )
        search = _Search(
            base=base, space=space, output=output, settings=settings, progress=progress,
            track=track, experiment=track_experiment,
        )  # fmt: skip
        remaining = settings.trials - done
        if remaining > 0:
            study.optimize(
                search.objective, n_trials=remaining, timeout=settings.timeout,
                catch=(PrivacyError,), callbacks=[search.after_trial],
            )  # fmt: skip
        summary = _summary(study, settings, space)
        _write_best_files(output, summary)
        with contextlib.suppress(OSError):  # empty once no trial runs
            (output / TRIALS_DIR).rmdir()
    best = summary["best"]
    return TuneResult(
        output=output,
        best_run=output / BEST_DIR if best else None,
        best_params=best["params"] if best else {},
        best_value=best["value"] if best else None,
        metric=best["metric"] if best else None,
        summary=summary,
    )
