"""`trustune runs list` and `trustune runs compare`, through the real command (a subprocess)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from test_docs_commands import readme_command
from trustune.runs import compare_runs, flatten_config, list_runs

ENV = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}


def trustune(
    *args: str | Path, cwd: Path | None = None, columns: int = 200
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trustune.cli.main", *map(str, args)],
        capture_output=True, text=True, env={**ENV, "COLUMNS": str(columns)}, cwd=cwd,
        timeout=300,
    )  # fmt: skip


def _error_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def _json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def lr_run(
    tmp_path_factory: pytest.TempPathFactory, tiny_model: Path, demo_files: tuple[Path, Path]
) -> Path:
    """A second tiny classification run: the tiny_run's data and model, another lr, 1 epoch."""
    import trustune

    output = tmp_path_factory.mktemp("runs-lr") / "lr"
    trustune.finetune(
        demo_files[0], model=str(tiny_model), output=output, epochs=1, batch_size=16, lr=5e-4,
        measure_latency=False, progress=False,
    )  # fmt: skip
    return output


@pytest.fixture(scope="module")
def runs_folder(
    tmp_path_factory: pytest.TempPathFactory, tiny_run: Path, regression_run: Path, lr_run: Path
) -> Path:
    """``runs/``: two runs, one a level down, a damaged manifest, an unfinished run (checkpoints
    only) and a folder that is no run."""
    folder = tmp_path_factory.mktemp("listing") / "runs"
    shutil.copytree(tiny_run, folder / "tiny")
    shutil.copytree(regression_run, folder / "sts")
    shutil.copytree(lr_run, folder / "group" / "lr")
    (folder / "broken").mkdir()
    (folder / "broken" / "trustune.json").write_text("{not json", encoding="utf-8")
    (folder / "half" / "checkpoints").mkdir(parents=True)
    (folder / "notes").mkdir()
    (folder / "notes" / "todo.txt").write_text("try a lower lr\n", encoding="utf-8")
    return folder


def test_list_json(runs_folder: Path) -> None:
    result = trustune("runs", "list", runs_folder, "--json")
    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)
    assert listed["folder"] == str(runs_folder)
    runs = {Path(r["path"]).relative_to(runs_folder).as_posix(): r for r in listed["runs"]}
    assert sorted(runs) == ["broken", "group/lr", "half", "sts", "tiny"]  # not notes/

    for name, task, metric in (
        ("tiny", "text-classification", "accuracy"),
        ("group/lr", "text-classification", "accuracy"),
        ("sts", "text-regression", "spearman"),
    ):
        run, folder = runs[name], runs_folder / name
        manifest, metrics = _json(folder / "trustune.json"), _json(folder / "metrics.json")
        assert run["problem"] is None
        assert (run["task"], run["metric"]) == (task, metric)
        assert run["value"] == metrics["validation"][metric]
        assert run["train_rows"] == manifest["data"]["train"]["rows"] > 0
        assert run["epochs"] == manifest["training"]["epochs_completed"]
        assert run["model"] == manifest["model"]["source"]
        assert run["created"] == manifest["created"]
        assert (run["epsilon"], run["encrypted"], run["signed"]) == (None, False, False)
    assert runs["tiny"]["epochs"] == 2 and runs["group/lr"]["epochs"] == 1

    assert runs["broken"]["task"] is None
    assert runs["broken"]["problem"].startswith("trustune.json cannot be read")
    assert str(runs_folder) not in runs["broken"]["problem"]  # the path is the list's
    assert "--resume" in runs["half"]["problem"]


def test_list_table(runs_folder: Path) -> None:
    wide = trustune("runs", "list", cwd=runs_folder.parent)  # the default folder: runs
    assert wide.returncode == 0, wide.stderr
    out = wide.stdout
    assert "text-classification: 2 runs, accuracy on the validation set" in out
    assert "text-regression: 1 run, spearman on the validation set" in out
    for name in ("runs/tiny", "runs/group/lr", "runs/sts"):
        assert name in out
    lines = out.splitlines()
    assert any(line.startswith("runs/broken: trustune.json cannot be read") for line in lines)
    assert any(line.startswith("runs/half: unfinished") for line in lines)
    tiny = next(line for line in lines if "runs/tiny" in line)
    accuracy = _json(runs_folder / "tiny" / "metrics.json")["validation"]["accuracy"]
    assert f"{accuracy:.4f}" in tiny

    narrow = trustune("runs", "list", cwd=runs_folder.parent, columns=80)
    assert narrow.returncode == 0, narrow.stderr
    tables = narrow.stdout.split("runs/broken:")[0]  # the reasons below are one line each
    assert max(len(line) for line in tables.splitlines()) <= 80


def test_list_shows_privacy_encryption_and_signature(tmp_path: Path, tiny_run: Path) -> None:
    from trustune.security import encrypt_run, generate_key, generate_signing_key, sign_run

    folder = tmp_path / "runs"
    shutil.copytree(tiny_run, folder / "signed")
    sign_run(folder / "signed", generate_signing_key())
    encrypt_run(tiny_run, key=generate_key(), output=folder / "sealed")
    # a DP run's privacy record, as training writes it (the figures are made up)
    shutil.copytree(tiny_run, folder / "private")
    manifest = _json(folder / "private" / "trustune.json")
    manifest["privacy"] = {"dp": True, "epsilon": 7.93, "delta": 1e-5}
    (folder / "private" / "trustune.json").write_text(json.dumps(manifest), encoding="utf-8")

    runs = {r.path.name: r for r in list_runs(folder)}
    assert (runs["signed"].signed, runs["signed"].encrypted) == (True, False)
    assert (runs["sealed"].signed, runs["sealed"].encrypted) == (False, True)
    assert runs["sealed"].value is not None  # metrics.json stays readable when sealed
    assert runs["private"].epsilon == 7.93
    out = trustune("runs", "list", folder).stdout
    assert "ε 7.93" in out and "encrypted" in out and "signed" in out
    # a run folder itself lists as that one run
    assert [r.path for r in list_runs(folder / "signed")] == [folder / "signed"]


def test_compare_json(tiny_run: Path, lr_run: Path) -> None:
    result = trustune("runs", "compare", tiny_run, lr_run, "--json")
    assert result.returncode == 0, result.stderr
    comparison = json.loads(result.stdout)
    assert comparison["runs"] == [str(tiny_run), str(lr_run)]
    config = comparison["config"]
    assert config["train.lr"] == [0.001, 0.0005]
    assert config["train.epochs"] == [2, 1]
    assert "data.train_file" not in config  # the same in both: not shown
    assert "train.batch_size" not in config
    assert comparison["missing"] == {}
    validation = comparison["validation"]
    for run, column in ((tiny_run, 0), (lr_run, 1)):
        recorded = _json(run / "metrics.json")["validation"]
        assert validation["accuracy"][column] == recorded["accuracy"]
        assert validation["loss"][column] == recorded["loss"]
    assert "per_class" not in validation and "data" not in validation


def test_compare_table_across_tasks(tiny_run: Path, regression_run: Path) -> None:
    result = trustune("runs", "compare", tiny_run, regression_run)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "config: what differs" in out and "data.train_file" in out
    row = next(line for line in out.splitlines() if "spearman" in line)
    assert "—" in row  # the classification run has no spearman
    spearman = _json(regression_run / "metrics.json")["validation"]["spearman"]
    assert f"{spearman:.4f}" in row
    assert "accuracy" in out


def test_compare_lists_evaluations_and_absent_keys(tmp_path: Path, tiny_run: Path) -> None:
    """Evaluations are compared by name, and a config key only one run has shows as absent."""
    older = tmp_path / "older"
    shutil.copytree(tiny_run, older)
    manifest = _json(older / "trustune.json")
    del manifest["config"]["model"]["pooler"]  # as a run of an older release
    (older / "trustune.json").write_text(json.dumps(manifest), encoding="utf-8")
    metrics = _json(older / "metrics.json")
    metrics["evaluations"] = {"test": {**metrics["validation"], "accuracy": 0.5}}
    (older / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")

    comparison = compare_runs([tiny_run, older])
    assert comparison.config == {"model.pooler": ("pretrained", None)}
    assert comparison.missing["model.pooler"] == (False, True)
    assert comparison.evaluations["test"]["accuracy"] == (None, 0.5)
    out = trustune("runs", "compare", tiny_run, older).stdout
    assert "evaluation test" in out
    assert next(line for line in out.splitlines() if "model.pooler" in line).count("—") == 1


def test_flatten_config() -> None:
    config = {"train": {"lr": 0.001, "sizing": {}}, "data": {"files": ["a", "b"], "x": None}}
    assert flatten_config(config) == {
        "train.lr": 0.001, "train.sizing": {}, "data.files": ["a", "b"], "data.x": None,
    }  # fmt: skip


def test_errors_are_one_line_with_exit_code_2(tmp_path: Path, tiny_run: Path) -> None:
    (tmp_path / "plain").mkdir()
    result = trustune("runs", "compare", tiny_run, tmp_path / "plain")
    assert result.returncode == 2
    assert _error_line(result) == (
        f"error: {tmp_path / 'plain'} is not a trustune run (no trustune.json); train one with "
        "`trustune train`"
    )
    result = trustune("runs", "compare", tiny_run, tmp_path / "nowhere")
    assert result.returncode == 2
    assert _error_line(result) == f"error: no run folder {tmp_path / 'nowhere'}"
    result = trustune("runs", "compare", tiny_run)
    assert result.returncode == 2
    assert "compare needs at least two runs" in _error_line(result)
    result = trustune("runs", "list", tmp_path / "nowhere")
    assert result.returncode == 2
    assert _error_line(result) == (
        f"error: no folder {tmp_path / 'nowhere'}; pass the folder that holds the runs "
        "(default runs/)"
    )
    (tmp_path / "file.txt").write_text("x", encoding="utf-8")
    result = trustune("runs", "list", tmp_path / "file.txt")
    assert result.returncode == 2
    assert "is a file, not a folder of runs" in _error_line(result)
    empty = trustune("runs", "list", tmp_path / "plain")
    assert (empty.returncode, empty.stdout.strip()) == (0, f"no runs in {tmp_path / 'plain'}")


def test_help() -> None:
    for action in ("list", "compare"):
        result = trustune("runs", action, "--help")
        assert result.returncode == 0
        assert f"usage: trustune runs {action}" in result.stdout
        assert "--json" in result.stdout


def test_readme_commands_as_written(tmp_path: Path, tiny_run: Path, lr_run: Path) -> None:
    """The tour's `runs` commands, run in a folder holding runs/NAME and runs/OTHER."""
    shutil.copytree(tiny_run, tmp_path / "runs" / "NAME")
    shutil.copytree(lr_run, tmp_path / "runs" / "OTHER")
    listed = trustune(*readme_command("trustune runs list").split()[1:], cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "runs/NAME" in listed.stdout and "runs/OTHER" in listed.stdout
    compare = readme_command("trustune runs compare").split()[1:]
    table = trustune(*compare, cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    assert "train.lr" in table.stdout
    compared = json.loads(trustune(*compare, "--json", cwd=tmp_path).stdout)
    assert compared["config"]["train.lr"] == [0.001, 0.0005]
