"""`trustune tune`: a study on the tiny model through the real command, pruning, resume after
kill -9, the best YAML round trip, the report section, the DP cost of a private search, and
the refusals of bad input."""

from __future__ import annotations

import json
import os
import random
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from test_docs_commands import readme_command
from trustune.config import load_config
from trustune.errors import ConfigError
from trustune.manifest import PrivacyRecord, read_manifest
from trustune.tuning.privacy_cost import study_privacy_cost
from trustune.tuning.space import default_space, space_from_dict

ENV = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}
_POSITIVE = ["great", "wonderful", "superb", "lovely", "excellent"]
_NEGATIVE = ["awful", "terrible", "boring", "dreadful", "poor"]
_NOUNS = ["film", "movie", "story", "show", "plot", "cast"]


def trustune(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trustune.cli.main", *map(str, args)],
        capture_output=True, text=True, env=ENV, cwd=cwd, timeout=600,
    )  # fmt: skip


def _error_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def easy_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two classes told apart by one word: the tiny model learns them at lr 3e-3 in 2 epochs
    and not at all at lr 1e-9 (the pruning test's good and hopeless trials)."""
    rng = random.Random(0)
    path = tmp_path_factory.mktemp("tune-data") / "easy.csv"
    lines = ["text,label"]
    for i in range(200):
        word = rng.choice(_POSITIVE if i % 2 else _NEGATIVE)
        lines.append(
            f"a {word} {rng.choice(_NOUNS)} {rng.choice(_NOUNS)},{'pos' if i % 2 else 'neg'}"
        )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def lr_space(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tune-space") / "space.yaml"
    path.write_text("train.lr: [3.0e-3, 1.0e-9]\n", encoding="utf-8")
    return path


def _study_args(data: Path, model: Path, space: Path, output: Path) -> list[str | Path]:
    """The README's tune command on the tiny model: 3 trials over two learning rates.

    Sampler seed 4 draws lr 3e-3, 3e-3, then 1e-9 (checked against Optuna's TPE with one random
    start-up trial); validation loss is the objective, so the hopeless third trial is worse
    than the median at its first validation."""
    words = shlex.split(readme_command("trustune tune --data"))[1:]
    values = {"--data": data, "--output": output, "--trials": "3"}
    args: list[str | Path] = [values.get(words[i - 1], w) if i else w for i, w in enumerate(words)]
    return [
        *args, "--model", model, "--space", space, "--epochs", "2", "--batch-size", "16",
        "--selection-metric", "loss", "--startup-trials", "1", "--sampler-seed", "4",
        "--pruner", "median",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def study(
    tmp_path_factory: pytest.TempPathFactory, tiny_model: Path, easy_data: Path, lr_space: Path
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    output = tmp_path_factory.mktemp("tune") / "study"
    result = trustune(*_study_args(easy_data, tiny_model, lr_space, output))
    assert result.returncode == 0, result.stderr
    return output, result


def test_three_trials_one_pruned_best_kept(
    study: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    output, result = study
    summary = json.loads((output / "tune.json").read_text(encoding="utf-8"))
    states = [t["state"] for t in summary["trials"]]
    assert len(states) == 3
    assert states.count("pruned") == 1, summary["trials"]
    pruned = next(t for t in summary["trials"] if t["state"] == "pruned")
    assert pruned["params"] == {"train.lr": 1e-9}
    assert pruned["note"] == "pruned at validation 1"
    assert list(pruned["intermediate"]) == ["1"]  # stopped after its first validation
    best = summary["best"]
    assert best["params"] == {"train.lr": 3e-3}
    assert best["metric"] == "loss"
    # the best run is a whole run folder; the other trials left nothing behind
    assert (output / "best" / "model" / "model.safetensors").is_file()
    assert read_manifest(output / "best").config["train"]["lr"] == 3e-3
    assert not (output / "trials").exists()
    assert f"trial {best['number']}" in result.stdout
    assert "1 pruned" in result.stderr
    for number in range(3):  # progress per trial
        assert f"trial {number}:" in result.stderr


def test_best_yaml_round_trip(study: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    output, _ = study
    config = load_config(output / "best.yaml")
    manifest = read_manifest(output / "best")
    assert config.to_dict() == {k: dict(v) for k, v in manifest.config.items()}
    assert config.train.lr == 3e-3
    # trustune train takes it as it is
    retrained = output.parent / "again"
    result = trustune("train", "--config", output / "best.yaml", "--output", retrained,
                      "--no-speed", "--quiet")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert read_manifest(retrained).config == manifest.config


def test_report_section(study: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    output, _ = study
    html = (output / "best" / "report.html").read_text(encoding="utf-8")
    assert "Hyperparameter search" in html
    assert "optimisation history" in html
    assert html.count("<td>pruned</td>") == 1
    assert "Privacy cost of the search" not in html  # not a private study


def test_existing_study_needs_resume(
    study: tuple[Path, subprocess.CompletedProcess[str]], tiny_model: Path, easy_data: Path,
    lr_space: Path,
) -> None:  # fmt: skip
    output, _ = study
    line = _error_line(trustune(*_study_args(easy_data, tiny_model, lr_space, output)))
    assert "holds a study already" in line and "--resume" in line
    # a resumed study that already has its trials runs none
    again = trustune("tune", "--output", output, "--resume", "--trials", "3", "--quiet")
    assert again.returncode == 0, again.stderr
    summary = json.loads((output / "tune.json").read_text(encoding="utf-8"))
    assert len(summary["trials"]) == 3


def test_resume_after_kill(
    tmp_path: Path, tiny_model: Path, easy_data: Path, lr_space: Path
) -> None:
    """kill -9 in the middle of trial 1; --resume marks it failed, runs its parameters again
    and completes the study."""
    output = tmp_path / "study"
    process = subprocess.Popen(
        [sys.executable, "-m", "trustune.cli.main",
         *map(str, _study_args(easy_data, tiny_model, lr_space, output))],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=ENV,
    )  # fmt: skip
    assert process.stderr is not None
    seen = []
    for line in process.stderr:  # the line that starts trial 1: it is RUNNING in the study
        seen.append(line)
        if line.startswith("trial 1:"):
            process.send_signal(signal.SIGKILL)
            break
    process.wait(timeout=120)
    assert process.returncode == -signal.SIGKILL, "".join(seen)
    resumed = trustune("tune", "--output", output, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "trials [1] were cut short" in resumed.stderr
    summary = json.loads((output / "tune.json").read_text(encoding="utf-8"))
    trials = {t["number"]: t for t in summary["trials"]}
    assert trials[1]["state"] == "fail"
    retry = next(t for t in trials.values() if t["retry_of"] == 1)
    assert retry["params"] == trials[1]["params"]
    assert retry["state"] == "complete"
    finished = [t for t in trials.values() if t["state"] in ("complete", "pruned")]
    assert len(finished) == 3
    assert (output / "best" / "trustune.json").is_file()


def test_private_study_sums_the_cost(tmp_path: Path, tiny_model: Path, easy_data: Path) -> None:
    import trustune
    from trustune.tuning import TuneSettings

    result = trustune.tune(
        data=easy_data, model=str(tiny_model), output=tmp_path / "dp",
        settings=TuneSettings(trials=2, pruner="none"), dp_epsilon=8.0, epochs=1,
        batch_size=16, gradient_accumulation_steps=2,
    )  # fmt: skip
    cost = result.privacy_cost
    assert cost is not None
    per_trial = cost["per_trial_epsilon"]
    assert len(per_trial) == cost["trials"] == 2
    assert all(7.0 < eps <= 8.0 for eps in per_trial)
    assert cost["basic"]["epsilon"] == pytest.approx(sum(per_trial))
    assert cost["composed"]["epsilon"] > max(per_trial)  # two looks at the data cost more
    assert cost["epsilon"] == min(cost["basic"]["epsilon"], cost["composed"]["epsilon"])
    # the DP space searched the clipping norm, not the privacy target
    assert "train.max_grad_norm" in result.summary["space"]
    html = (tmp_path / "dp" / "best" / "report.html").read_text(encoding="utf-8")
    assert "Privacy cost of the search" in html


def test_composition_of_identical_trials_is_one_longer_run() -> None:
    """Composing two trials of n steps at (σ, q) is one run of 2n steps: the accountant's own
    composition, checked against it directly."""
    from trustune.privacy import epsilon_spent

    trial = PrivacyRecord(
        dp=True, epsilon=3.0, delta=1e-5, accountant="rdp", noise_multiplier=1.1,
        sample_rate=0.01, steps=500, accountant_history=((1.1, 0.01, 500),),
    )  # fmt: skip
    cost = study_privacy_cost([trial, trial, PrivacyRecord(dp=False)])
    assert cost is not None and cost.trials == 2
    longer = epsilon_spent(
        noise_multiplier=1.1, sample_rate=0.01, steps=1000, delta=1e-5, accountant="rdp"
    )
    assert cost.composed_epsilon == pytest.approx(longer)
    assert cost.basic_epsilon == 6.0 and cost.basic_delta == 2e-5
    assert study_privacy_cost([PrivacyRecord(dp=False)]) is None


def test_default_spaces() -> None:
    plain = default_space("text-classification", private=False)
    assert {"train.lr", "train.epochs", "train.batch_size", "train.warmup_ratio",
            "train.weight_decay"} <= set(plain)  # fmt: skip
    private = default_space("text-regression", private=True)
    assert {"train.max_grad_norm", "train.gradient_accumulation_steps", "train.lr"} <= set(private)
    assert private["train.lr"].high > plain["train.lr"].high  # DP-SGD wants a larger step


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"train.nope": [1]}, "not a config key"),
        ({"privacy.epsilon": [1, 8]}, "cannot be searched"),
        ({"train.lr": {"low": 1e-3, "high": 1e-5}}, "need low < high"),
        ({"train.lr": {"low": 0, "high": 1e-3, "log": True}}, "low > 0"),
        ({"train.precision": {"low": 1, "high": 2}}, "not numeric"),
        ({"train.precision": ["fp64"]}, "train.precision"),
        ({}, "expected a mapping"),
    ],
)
def test_bad_space(raw: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        space_from_dict(raw)


def test_bad_input_is_one_line(tmp_path: Path, easy_data: Path) -> None:
    """The command's refusal is one line with exit code 2; the others through the library (the
    CLI turns each TrustuneError into that line)."""
    space = tmp_path / "space.yaml"
    space.write_text("train.lrr: [1]\n", encoding="utf-8")
    line = _error_line(trustune("tune", "--data", easy_data, "--space", space,
                                "--output", tmp_path / "s"))  # fmt: skip
    assert "train.lrr is not a config key" in line
    assert not (tmp_path / "s").exists()  # refused before anything was written


def test_refusals(tmp_path: Path, easy_data: Path) -> None:
    import trustune
    from trustune.errors import ArtifactError
    from trustune.tuning import TuneSettings

    with pytest.raises(ConfigError, match="--trials must be"):
        TuneSettings(trials=0)
    with pytest.raises(ConfigError, match="--pruner 'mean' is not known"):
        TuneSettings(pruner="mean")
    with pytest.raises(ArtifactError, match="no study to resume"):
        trustune.tune(output=tmp_path / "none", resume=True)
    assert not (tmp_path / "none").exists()
    with pytest.raises(ConfigError, match="drop the data and training flags"):
        trustune.tune(output=tmp_path / "none", resume=True, lr=1e-4)
    with pytest.raises(ConfigError, match="nothing to search"):
        trustune.tune(
            data=easy_data, output=tmp_path / "all", lr=1e-4, epochs=1, batch_size=8,
            warmup_ratio=0.0, weight_decay=0.0,
        )  # fmt: skip
    with pytest.raises(ConfigError, match="unknown option"):
        trustune.tune(data=easy_data, output=tmp_path / "x", learning_rate=1e-4)


def test_each_trial_is_tracked(tmp_path: Path, tiny_model: Path, easy_data: Path) -> None:
    """--track: every trial is a TensorBoard run of its own, read back from its event files."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    import trustune
    from trustune.tuning import TuneSettings

    space = tmp_path / "space.yaml"
    space.write_text("train.lr: [3.0e-3]\n", encoding="utf-8")
    trustune.tune(
        data=easy_data, model=str(tiny_model), output=tmp_path / "s", epochs=1,
        settings=TuneSettings(trials=2, pruner="none", space=str(space)),
        track=[f"tensorboard:{tmp_path / 'tb'}"],
    )  # fmt: skip
    for name in ("trial-0000", "trial-0001"):
        events = EventAccumulator(str(tmp_path / "tb" / name))
        events.Reload()
        assert "train/loss" in events.Tags()["scalars"], name
