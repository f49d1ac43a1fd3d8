"""``--track mlflow[:URI]``: the run in an MLflow tracking store, through MLflow's own client.

``mlflow`` alone uses MLflow's defaults: ``$MLFLOW_TRACKING_URI``, else what MLflow picks
(``sqlite:///mlflow.db`` in the working folder, artifacts in ``./mlruns``). ``mlflow:URI``
takes any tracking URI MLflow knows: ``sqlite:///runs/mlflow.db`` (an experiment trustune
creates there keeps its artifacts in ``mlartifacts/`` beside the database file), a server
``http(s)://HOST:PORT`` (credentials better in ``$MLFLOW_TRACKING_USERNAME`` /
``$MLFLOW_TRACKING_PASSWORD`` than in the URI; a password in the URI is never shown), or a
local folder (the file store, which MLflow 3 refuses unless ``MLFLOW_ALLOW_FILE_STORE=true``).

The client is made, and the store opened, before training: a URI MLflow cannot use is a
:class:`~trustune.errors.ConfigError`. Step figures are sent in batches, at each validation and
every few hundred figures, so a remote server costs no round trip per step.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from trustune.errors import ConfigError
from trustune.tracking.registry import register_tracker
from trustune.tracking.spec import reason_of, safe_target
from trustune.tracking.tracker import TrackedRun, Tracker
from trustune.version import __version__

__all__ = ["MlflowTracker"]

_INSTALL = "pip install 'trustune[mlflow]'"
_BUFFERED = 500  # step figures kept before a batch is sent (a batch takes at most 1,000)
_PARAMS_PER_BATCH = 100  # MLflow's limit per log_batch call
_PARAM_LENGTH = 6000  # MLflow 3's longest parameter value
_SUMMARY_TAG = "mlflow.note.content"  # shown as the run's description


def _sqlite_file(uri: str) -> Path | None:
    """The database file of a ``sqlite:///PATH`` URI (relative to the working folder)."""
    if not uri.startswith("sqlite:///"):
        return None
    path = uri.removeprefix("sqlite:///").split("?", 1)[0]
    return None if path in ("", ":memory:") else Path(path)


def _open_client(uri: str | None, label: str) -> Any:
    try:
        from mlflow import MlflowClient
    except ImportError as e:
        raise ConfigError(f"--track {label} needs MLflow: {_INSTALL}") from e
    database = _sqlite_file(uri) if uri else None
    if database is not None:
        database.parent.mkdir(parents=True, exist_ok=True)  # SQLite makes the file, not folders
    try:
        return MlflowClient(tracking_uri=uri)  # opens the store: a bad URI fails here
    except Exception as e:
        if "MLFLOW_ALLOW_FILE_STORE" in str(e):
            raise ConfigError(
                f"--track {label}: MLflow 3 refuses the file store (a local folder) unless "
                "MLFLOW_ALLOW_FILE_STORE=true is set; use --track mlflow:sqlite:///mlflow.db, "
                "or set MLFLOW_ALLOW_FILE_STORE=true"
            ) from None
        raise ConfigError(
            f"--track {label}: MLflow cannot use this tracking URI ({reason_of(e, uri)}); "
            "give sqlite:///PATH, http(s)://HOST:PORT or a folder"
        ) from None


class MlflowTracker(Tracker):
    """One MLflow run per tracked run, in the experiment ``run.experiment``."""

    def __init__(self, uri: str | None, run: TrackedRun) -> None:
        label = "mlflow" if uri is None else f"mlflow:{safe_target(uri)}"
        # the URI MLflow will use, whose password no message may show
        secret = uri or os.environ.get("MLFLOW_TRACKING_URI")
        super().__init__(label=label, secret=secret, run=run)
        self.client = _open_client(uri, label)
        database = _sqlite_file(uri) if uri else None
        self.artifact_location = (
            (database.resolve().parent / "mlartifacts").as_uri() if database is not None else None
        )
        self.run_id: str | None = None
        self.buffer: list[Any] = []

    def _experiment_id(self) -> str:
        name = self.run.experiment
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return str(found.experiment_id)
        return str(self.client.create_experiment(name, artifact_location=self.artifact_location))

    def open(self, params: dict[str, str], config: dict[str, Any], run_dir: Path) -> None:
        from mlflow.entities import Param

        tags = {"trustune.version": __version__, **self.run.tags}
        created = self.client.create_run(self._experiment_id(), run_name=self.run.name, tags=tags)
        self.run_id = created.info.run_id
        entries = [Param(key, value[:_PARAM_LENGTH]) for key, value in params.items()]
        for start in range(0, len(entries), _PARAMS_PER_BATCH):
            self.client.log_batch(self.run_id, params=entries[start : start + _PARAMS_PER_BATCH])

    def log_metrics(self, step: int, values: dict[str, float], *, flush: bool = False) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.buffer += [Metric(key, value, now, step) for key, value in values.items()]
        if flush or len(self.buffer) >= _BUFFERED:
            self._flush()

    def _flush(self) -> None:
        while self.buffer:
            batch, self.buffer = self.buffer[:_BUFFERED], self.buffer[_BUFFERED:]
            self.client.log_batch(self.run_id, metrics=batch)

    def log_final(self, step: int, values: dict[str, float], summary: str, run_dir: Path) -> None:
        self.log_metrics(step, values, flush=True)
        self.client.set_tag(self.run_id, _SUMMARY_TAG, summary)
        self.client.set_tag(self.run_id, "trustune.run_dir", str(run_dir))
        for name in self.ARTIFACTS:
            if (run_dir / name).is_file():
                self.client.log_artifact(self.run_id, str(run_dir / name))

    def close(self, status: str) -> None:
        if self.run_id is None:
            return
        self._flush()  # a failed run too: what was buffered tells how far it got
        self.client.set_terminated(self.run_id, status)
        self.run_id = None


@register_tracker("mlflow", target="URI")
def mlflow_tracker(target: str | None, run: TrackedRun) -> Tracker:
    return MlflowTracker(target, run)
