"""`trustune serve` and `trustune explain` flags come from the fields of their settings types
(ServeSettings, ExplainSettings), as `trustune train`'s come from the config: the same names and
defaults as before, a new field is a new flag, and --method lists the registered methods."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pytest

from trustune.cli.flags import add_settings_flags, flag_arguments, settings_values
from trustune.cli.main import build_parser, main
from trustune.config import Precision, flag_metadata
from trustune.errors import ConfigError
from trustune.explain import ExplainFormat, ExplainSettings, known_methods
from trustune.serve.settings import ServeSettings

ENV = {**os.environ, "COLUMNS": "200"}


def _parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


def _help(capsys: pytest.CaptureFixture[str], *command: str) -> str:
    with pytest.raises(SystemExit) as stop:
        main([*command, "--help"])
    assert stop.value.code == 0
    return " ".join(capsys.readouterr().out.split())


def test_serve_flags_keep_their_names_and_defaults() -> None:
    from trustune.cli.serve import settings_from_args

    assert settings_from_args(_parse("serve", "runs/x")) == ServeSettings()
    given = _parse(
        "serve", "runs/x", "--host", "::1", "--port", "9000", "--db", "sqlite:///k.db",
        "--workers", "2", "--max-batch", "8", "--max-wait-ms", "1.5", "--max-body", "4096",
        "--max-texts", "5", "--max-chars", "50", "--max-explain-texts", "3",
        "--max-concurrency", "4", "--threads", "1", "--graceful-timeout", "2", "--log-texts",
        "--no-auth",
    )  # fmt: skip
    assert settings_from_args(given) == ServeSettings(
        host="::1", port=9000, db_url="sqlite:///k.db", auth=False, workers=2, max_batch=8,
        max_wait_ms=1.5, max_body_bytes=4096, max_texts=5, max_chars=50, max_explain_texts=3,
        max_concurrency=4, log_texts=True, graceful_timeout_s=2.0, threads=1,
    )  # fmt: skip


def test_serve_help_shows_the_defaults_of_the_settings(capsys: pytest.CaptureFixture[str]) -> None:
    out = _help(capsys, "serve")
    for shown in (
        "--host HOST address to listen on (default: 127.0.0.1)",
        "--max-batch N texts per batched forward pass of the micro-batcher (default: 32)",
        "--max-body BYTES request body limit in bytes, 413 above (default: 1 MiB)",
        "--max-wait-ms MS", "(default: 5)", "--graceful-timeout S", "--threads N", "--db URL",
        "--no-auth no API keys", "--log-texts keep the raw texts",
    ):  # fmt: skip
        assert shown in out, shown
    # settings that are not flags stay out of the command line
    assert "--body-timeout" not in out and "--audit-flush" not in out


def test_explain_flags_keep_their_names_and_defaults() -> None:
    def settings(*argv: str) -> ExplainSettings:
        return ExplainSettings(
            **settings_values(_parse("explain", "runs/x", *argv), ExplainSettings)
        )

    assert settings("--text", "hi") == ExplainSettings()
    assert settings(
        "--data", "d.csv", "--method", "occlusion", "--target", "billing", "--format", "json",
        "--global", "--evaluate", "--sample", "5", "--max-rows", "3", "--text-column", "a",
        "--text-pair-column", "b", "--label-column", "c", "--skip-bad-rows", "--top-k", "4",
        "--min-count", "1", "--steps", "8", "--samples", "16", "--batch-size", "2",
        "--precision", "fp32", "--seed", "3",
    ) == ExplainSettings(
        method="occlusion", target="billing", format=ExplainFormat.JSON, global_importance=True,
        evaluate=True, sample=5, max_rows=3, text_column="a", text_pair_column="b",
        label_column="c", skip_bad_rows=True, top_k=4, min_count=1, steps=8, samples=16,
        batch_size=2, precision=Precision.FP32, seed=3,
    )  # fmt: skip
    options = settings("--steps", "8", "--samples", "16", "--batch-size", "2").options()
    assert (options.n_steps, options.n_samples, options.texts_per_batch) == (8, 16, 2)


def test_explain_settings_are_validated() -> None:
    with pytest.raises(ConfigError, match=r"^--steps: 0 is not allowed, it must be > 0$"):
        ExplainSettings(steps=0)
    with pytest.raises(ConfigError, match=r"--max-rows: -1 is not allowed"):
        ExplainSettings(max_rows=-1)
    with pytest.raises(ConfigError, match=r"format: 'xml' is not allowed. Choose between"):
        ExplainSettings(format="xml")  # type: ignore[arg-type]
    assert ExplainSettings(seed=0, format="HTML").format is ExplainFormat.HTML  # type: ignore[arg-type]


def test_explain_help_lists_the_registered_methods() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "trustune.cli.main", "explain", "--help"],
        capture_output=True, text=True, env=ENV, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    options = result.stdout.split("\noptions:", 1)[1]
    line = " ".join(options.split("--method NAME", 1)[1].split("--target", 1)[0].split())
    assert line.endswith("one of: " + ", ".join(known_methods()))
    assert {"integrated-gradients", "occlusion", "kernel-shap"} <= set(known_methods())


@pytest.fixture
def extra_method() -> Iterator[str]:
    """A method registered for one test only."""
    from trustune.explain import MethodResult, register_explainer, registry

    name = "test-listed"

    @register_explainer(name, summary="ones", needs_gradients=False)
    def ones(model: object, batch: object, options: object) -> MethodResult:
        return MethodResult([np.ones(t.n_words) for t in batch.texts])  # type: ignore[attr-defined]

    try:
        yield name
    finally:
        registry._EXPLAINERS.pop(name)


def test_a_method_registered_later_is_listed(
    extra_method: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert f"kernel-shap, {extra_method}" in _help(capsys, "explain")


@dataclass(frozen=True)
class _MoreServe(ServeSettings):
    queue_limit: int = field(default=7, metadata=flag_metadata("requests queued per worker"))
    unflagged: int = 3  # no flag metadata: not on the command line


@dataclass(frozen=True)
class _MoreExplain(ExplainSettings):
    show_tokens: bool = field(default=False, metadata=flag_metadata("show the word pieces"))


def test_a_new_settings_field_is_a_new_flag(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import trustune.cli.explain
    import trustune.cli.serve

    monkeypatch.setattr(trustune.cli.serve, "ServeSettings", _MoreServe)
    monkeypatch.setattr(trustune.cli.explain, "ExplainSettings", _MoreExplain)
    assert "--queue-limit N requests queued per worker (default: 7)" in _help(capsys, "serve")
    assert "--unflagged" not in _help(capsys, "serve")
    assert "--show-tokens show the word pieces" in _help(capsys, "explain")

    served = trustune.cli.serve.settings_from_args(
        _parse("serve", "runs/x", "--queue-limit", "9", "--no-auth")
    )
    assert served == _MoreServe(queue_limit=9, auth=False)
    explained = _parse("explain", "runs/x", "--text", "hi", "--show-tokens", "--steps", "4")
    assert _MoreExplain(**settings_values(explained, _MoreExplain)) == _MoreExplain(
        show_tokens=True, steps=4
    )


def test_bool_flags_read_their_default_from_the_flag_name() -> None:
    """A switch turns a False on; a --no- flag turns a True off; anything else is refused."""

    @dataclass(frozen=True)
    class Switches:
        dry_run: bool = field(default=False, metadata=flag_metadata("change nothing"))
        color: bool = field(default=True, metadata=flag_metadata("colour", flag="--no-color"))

    parser = argparse.ArgumentParser()
    add_settings_flags(parser, Switches)
    assert settings_values(parser.parse_args([]), Switches) == {"dry_run": False, "color": True}
    given = parser.parse_args(["--dry-run", "--no-color"])
    assert settings_values(given, Switches) == {"dry_run": True, "color": False}

    @dataclass(frozen=True)
    class Ambiguous:
        fast: bool = field(default=True, metadata=flag_metadata("go fast"))

    [spec] = Ambiguous.__dataclass_fields__.values()
    with pytest.raises(ValueError, match="--fast: a bool flag that defaults to True needs"):
        flag_arguments(spec, flag="--fast")
    assert flag_arguments(spec, flag="--fast", negatable=True)["action"] is (
        argparse.BooleanOptionalAction
    )
