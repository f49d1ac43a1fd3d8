"""Opt-in experiment tracking (`--track`): one real `trustune train` run logged to MLflow (SQLite
and the file store) and TensorBoard, read back through the libraries' own readers; refusals before
training; a server that is down; nothing tracked without `--track`."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from test_docs_commands import readme_command
from trustune.errors import ConfigError, TrainingInterrupted
from trustune.progress import Progress

ENV = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}
ENV.pop("MLFLOW_TRACKING_URI", None)
ENV.pop("MLFLOW_ALLOW_FILE_STORE", None)
# MLflow's own SQLAlchemy use, when these tests read its SQLite store back
pytestmark = pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy:DeprecationWarning")
TINY = ["--epochs", "2", "--batch-size", "16", "--lr", "1e-3", "--quiet", "--no-speed"]
DOCUMENTED = "trustune train --data tickets.csv --output runs/tickets --track mlflow:sqlite"


def trustune(
    *args: str | Path, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trustune.cli.main", *map(str, args)],
        capture_output=True, text=True, env=env or ENV, cwd=cwd, timeout=300,
    )  # fmt: skip


def _error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def tracked(
    tmp_path_factory: pytest.TempPathFactory, tiny_model: Path, demo_files: tuple[Path, Path]
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """docs/tracking.md's command, run as written in a fresh folder (tiny model), plus a file
    store (allowed by MLflow's switch) and a TensorBoard folder of its own."""
    cwd = tmp_path_factory.mktemp("tracked")
    shutil.copy(demo_files[0], cwd / "tickets.csv")
    words = shlex.split(readme_command(DOCUMENTED))
    result = trustune(
        *words[1:], "--model", tiny_model, *TINY, "--track", "mlflow:./mlruns",
        "--track", "tensorboard:tb", "--track-experiment", "support", cwd=cwd,
        env={**ENV, "MLFLOW_ALLOW_FILE_STORE": "true"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return cwd, result


def _mlflow_run(uri: str, experiment: str = "support") -> tuple[Any, Any]:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(experiment)
    assert found is not None
    (run,) = client.search_runs([found.experiment_id])
    return client, run


def _manifest(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "trustune.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("store", ["sqlite", "file"])
def test_mlflow_run_read_back(
    tracked: tuple[Path, Any], store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cwd, _ = tracked
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    uri = f"sqlite:///{cwd / 'runs/mlflow.db'}" if store == "sqlite" else str(cwd / "mlruns")
    client, run = _mlflow_run(uri)
    manifest = _manifest(cwd / "runs/tickets")
    assert run.info.run_name == "tickets" and run.info.status == "FINISHED"
    params = run.data.params
    assert params["train.lr"] == "0.001" and params["train.epochs"] == "2"
    assert params["model.name"] == str(manifest["config"]["model"]["name"])
    assert not any("track" in key for key in params)  # run control, not configuration
    losses = client.get_metric_history(run.info.run_id, "train/loss")
    assert len(losses) == manifest["training"]["steps"] > 1
    assert [m.step for m in losses] == list(range(1, len(losses) + 1))
    validations = client.get_metric_history(run.info.run_id, "validation/accuracy")
    history = manifest["training"]["history"]
    assert [(m.step, m.value) for m in validations] == [
        (h["step"], pytest.approx(h["val_accuracy"])) for h in history
    ]
    assert {"train/lr", "train/samples_per_s", "validation/loss"} <= set(run.data.metrics)
    metrics = json.loads((cwd / "runs/tickets/metrics.json").read_text(encoding="utf-8"))
    final = run.data.metrics["final/validation/accuracy"]
    assert final == pytest.approx(metrics["validation"]["accuracy"])
    assert not any("per_class" in key for key in run.data.metrics)  # label names stay out
    listed = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert listed >= {"report.html", "trustune.json"}
    assert "text-classification" in run.data.tags["mlflow.note.content"]


def test_artifacts_beside_the_database_and_nothing_else_written(tracked: tuple[Path, Any]) -> None:
    cwd, result = tracked
    # the SQLite experiment keeps its artifacts beside the database, not in ./mlruns
    (report,) = (cwd / "runs/mlartifacts").glob("*/artifacts/report.html")
    assert report.read_bytes() == (cwd / "runs/tickets/report.html").read_bytes()
    assert {p.name for p in cwd.iterdir()} == {"tickets.csv", "runs", "mlruns", "tb"}
    assert not (cwd / "mlflow.db").exists()
    assert "--track" not in json.dumps(_manifest(cwd / "runs/tickets"))
    assert "tracking stopped" not in result.stderr


def test_tensorboard_events_read_back(tracked: tuple[Path, Any]) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cwd, _ = tracked
    manifest = _manifest(cwd / "runs/tickets")
    steps = manifest["training"]["steps"]
    # tensorboard alone: in the run folder; tensorboard:tb: a folder per run name
    for folder in (cwd / "runs/tickets/tensorboard", cwd / "tb/tickets"):
        events = EventAccumulator(str(folder))
        events.Reload()
        assert [e.step for e in events.Scalars("train/loss")] == list(range(1, steps + 1))
        validation = events.Scalars("validation/accuracy")
        assert [e.step for e in validation] == [h["step"] for h in manifest["training"]["history"]]
        assert "final/validation/accuracy" in events.Tags()["scalars"]
        assert {"summary/text_summary", "status/text_summary"} <= set(events.Tags()["tensors"])
        summary = events.Tensors("summary/text_summary")[0].tensor_proto.string_val[0].decode()
        assert "report.html" in summary and "text-classification" in summary
        hparams = events.PluginTagToContent("hparams")
        assert "_hparams_/session_start_info" in hparams
        assert b"train.lr" in hparams["_hparams_/session_start_info"]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("mlflow:store", "MLflow 3 refuses the file store (a local folder) unless "
         "MLFLOW_ALLOW_FILE_STORE=true is set; use --track mlflow:sqlite:///mlflow.db"),
        ("http://alice:s3cret@example.invalid", "--track http://alice:***@example.invalid: "
         "unknown tracker 'http'; give mlflow[:URI] or tensorboard[:DIR]"),
    ],
)  # fmt: skip
def test_bad_spec_refused_before_training(
    tmp_path: Path, demo_files: tuple[Path, Path], tiny_model: Path, spec: str, expected: str
) -> None:
    result = trustune(
        "train", "--data", demo_files[0], "--model", tiny_model, "--output", "runs/x",
        "--track", spec, *TINY, cwd=tmp_path,
    )  # fmt: skip
    line = _error_line(result)
    assert expected in line
    assert "s3cret" not in result.stderr + result.stdout
    assert not (tmp_path / "runs").exists() and not (tmp_path / "store").exists()


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("mlfow", "--track mlfow: unknown tracker 'mlfow'; give mlflow[:URI] or tensorboard[:DIR]"),
        ("mlflow:", "--track mlflow: has nothing after the colon; give --track mlflow for its "
         "default or --track mlflow:URI"),
        ("mlflow:nosuch://host", "MLflow cannot use this tracking URI"),
        ("", "unknown tracker ''"),
    ],
)  # fmt: skip
def test_bad_spec_messages(spec: str, expected: str) -> None:
    from trustune.tracking import tracking_observers

    with pytest.raises(ConfigError) as raised:
        tracking_observers([spec], run_name="a")
    assert expected in str(raised.value) and "\n" not in str(raised.value)


def test_no_track_imports_and_writes_nothing(
    tmp_path: Path, demo_files: tuple[Path, Path], tiny_model: Path
) -> None:
    script = (
        "import sys, trustune\n"
        f"trustune.finetune({str(demo_files[0])!r}, model={str(tiny_model)!r}, output='runs/a',"
        " epochs=1, batch_size=16, measure_latency=False, progress=False)\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'mlflow', 'tensorboard'}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=ENV, cwd=tmp_path,
        timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"
    assert [p.name for p in tmp_path.iterdir()] == ["runs"]
    assert not (tmp_path / "runs/a/tensorboard").exists()


class _Messages(Progress):
    def __init__(self, stop_at: int | None = None) -> None:
        self.lines: list[str] = []
        self.stop_at, self.steps = stop_at, 0

    def message(self, text: str) -> None:
        self.lines.append(text)

    def advance(self, task: str, amount: int = 1, **fields: Any) -> None:
        self.steps += amount
        if self.steps == self.stop_at:
            raise KeyboardInterrupt


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_server_down_warns_once_and_training_goes_on(
    tmp_path: Path, demo_files: tuple[Path, Path], tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import trustune

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    progress = _Messages()
    uri = f"http://alice:s3cret@127.0.0.1:{_free_port()}"  # nothing listens there
    run = trustune.finetune(
        demo_files[0], model=str(tiny_model), output=tmp_path / "run", epochs=1, batch_size=16,
        measure_latency=False, progress=progress, track=[f"mlflow:{uri}"],
    )  # fmt: skip
    assert (run.path / "trustune.json").is_file()
    warnings = [line for line in progress.lines if line.startswith("warning:")]
    assert len(warnings) == 1, progress.lines
    assert "tracking stopped, training goes on" in warnings[0]
    assert "alice:***@127.0.0.1" in warnings[0]
    assert "s3cret" not in " ".join(progress.lines)


def test_interrupted_run_ends_killed_with_its_steps(
    tmp_path: Path, demo_files: tuple[Path, Path], tiny_model: Path
) -> None:
    import trustune

    uri = f"sqlite:///{tmp_path / 'db/mlflow.db'}"
    with pytest.raises(TrainingInterrupted):
        trustune.finetune(
            demo_files[0], model=str(tiny_model), output=tmp_path / "run", epochs=2,
            batch_size=16, measure_latency=False, progress=_Messages(stop_at=3),
            track=[f"mlflow:{uri}"],
        )  # fmt: skip
    client, run = _mlflow_run(uri, experiment="trustune")
    assert run.info.status == "KILLED" and run.info.run_name == "run"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")] == [1, 2]


def test_missing_library_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from trustune.tracking import tracking_observers

    monkeypatch.setitem(sys.modules, "mlflow", None)  # import mlflow now raises ImportError
    with pytest.raises(ConfigError, match=r"pip install 'trustune\[mlflow\]'"):
        tracking_observers(["mlflow"], run_name="a")
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(ConfigError, match=r"pip install 'trustune\[tensorboard\]'"):
        tracking_observers(["tensorboard:tb"], run_name="a")


def test_specs_parsed_and_passwords_hidden() -> None:
    from trustune.tracking import (
        TrackSpec,
        known_trackers,
        parse_track_spec,
        safe_target,
        tracking_observers,
    )
    from trustune.tracking.spec import scrub

    known = known_trackers()
    assert known == {"mlflow": "URI", "tensorboard": "DIR"}
    assert parse_track_spec("mlflow", known=known) == TrackSpec("mlflow")
    spec = parse_track_spec("mlflow:https://bob:pa55@host:5000/x", known=known)
    assert spec == TrackSpec("mlflow", "https://bob:pa55@host:5000/x")
    assert "pa55" not in repr(spec) + str(spec)
    assert str(spec) == "mlflow:https://bob:***@host:5000/x"
    assert parse_track_spec("mlflow:sqlite:///a/b.db", known=known).target == "sqlite:///a/b.db"
    assert safe_target("http://host:80/x") == "http://host:80/x"
    assert scrub("failed: pa55 refused", "https://bob:pa55@host") == "failed: *** refused"
    assert tracking_observers([], run_name="a") == []
    with pytest.raises(ConfigError, match="given twice"):
        tracking_observers(["tensorboard", "tensorboard"], run_name="a")


def test_observers_without_start_or_end_hooks_are_fine(tmp_path: Path) -> None:
    from trustune.train.observer import Observers

    class Pruner:  # what a tuner's observer has: the loop events only
        def __init__(self) -> None:
            self.seen: list[int] = []

        def on_log(self, step: int, fields: dict[str, Any]) -> None:
            self.seen.append(step)

        def on_validation(self, step: int, epoch: float, metrics: dict[str, float]) -> None:
            self.seen.append(-step)

    pruner = Pruner()
    observers = Observers([pruner])
    observers.start({"train": {}}, tmp_path)
    observers.log(1, {"loss": 1.0})
    observers.validation(1, 0.5, {"loss": 1.0})
    observers.abort(RuntimeError("x"))
    assert pruner.seen == [1, -1]


def test_public_surface() -> None:
    import trustune.tracking as tracking

    assert set(tracking.__all__) == {
        "DEFAULT_EXPERIMENT", "TrackSpec", "TrackedRun", "Tracker", "known_trackers",
        "parse_track_spec", "parse_track_specs", "register_tracker", "safe_target",
        "tracking_observers",
    }  # fmt: skip
    for name in tracking.__all__:
        assert hasattr(tracking, name)


def test_final_metrics_hold_the_privacy_spent_and_no_label_names() -> None:
    import dataclasses

    from trustune.manifest import Manifest, PrivacyRecord
    from trustune.tracking.tracker import final_metrics, summary_text

    manifest = dataclasses.replace(
        Manifest(), privacy=PrivacyRecord(dp=True, epsilon=7.9, delta=1e-5)
    )
    metrics = {
        "validation": {
            "accuracy": 0.5, "per_class": {"billing": {"f1": 1.0}}, "data": {"rows": 30},
            "speed": {"latency_ms_p50": 3.0, "device": "cpu"},
        }
    }  # fmt: skip
    assert final_metrics(metrics, manifest) == {
        "final/validation/accuracy": 0.5,
        "final/validation/speed/latency_ms_p50": 3.0,
        "privacy/epsilon": 7.9,
        "privacy/delta": 1e-5,
    }
    assert "ε = 7.900, δ = 1e-05" in summary_text(metrics, manifest)
