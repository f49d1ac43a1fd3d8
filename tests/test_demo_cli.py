"""`trustune demo` end to end (tiny model, a few rows) and `--help` on every command."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from test_cli import trustune
from trustune.cli.main import build_parser
from trustune.store import Store


def _commands(
    parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()
) -> list[tuple[str, ...]]:
    found: list[tuple[str, ...]] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                found.append((*prefix, name))
                found.extend(_commands(child, (*prefix, name)))
    return found


def test_every_command_and_subcommand_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    commands = _commands(build_parser())
    assert {("serve",), ("keys", "create"), ("audit", "log"), ("explain",)} <= set(commands)
    # one real subprocess for a nested command; the rest in process (argparse exits 0 on --help)
    result = trustune("keys", "create", "--help")
    assert result.returncode == 0 and "usage: trustune keys create" in result.stdout
    for command in commands:
        with pytest.raises(SystemExit) as stop:
            build_parser().parse_args([*command, "--help"])
        assert stop.value.code == 0, command
    assert "usage: trustune audit log" in capsys.readouterr().out


def test_demo_runs_the_pipeline_and_creates_a_key_store(tmp_path: Path, tiny_model: Path) -> None:
    out = tmp_path / "demo"
    result = trustune("demo", "--model", tiny_model, "--rows", "120", "--epochs", "1",
                      "--quiet", "--output", out)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (out / "runs" / "support" / "report.html").is_file()
    assert "trustune serve" in result.stdout and "trustune explain" in result.stdout
    secrets = [
        line.strip() for line in result.stdout.splitlines() if line.strip().startswith("tt_")
    ]
    assert len(secrets) == 1
    with Store.open(f"sqlite:///{out / 'trustune.db'}", create=False) as store:
        key = store.authenticate(secrets[0])
        assert key is not None and key.name == "demo" and key.role.value == "explain"
        assert key.expires_at is not None
