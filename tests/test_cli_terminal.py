"""The CLI in a terminal: 80 columns (COLUMNS=80, real subprocesses), colour systems, grouped
`train --help` with examples that parse, and the progress bar of `trustune evaluate`."""

from __future__ import annotations

import io
import os
import re
import shlex
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from rich.console import Console

from trustune.cli.main import build_parser, main
from trustune.cli.render import BarProgress
from trustune.cli.train import EXAMPLES
from trustune.explain.explanation import Explanation
from trustune.explain.render import terminal_text
from trustune.store import Role, Store

ENV = {
    **{k: v for k, v in os.environ.items() if not k.startswith(("TRUSTUNE_", "FORCE_COLOR", "NO_COLOR"))},
    "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1", "COLUMNS": "80",
}  # fmt: skip
_ESCAPES = re.compile(r"\x1b\[[0-9;]*m")


def trustune(*args: str | Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trustune.cli.main", *map(str, args)],
        capture_output=True, text=True, env={**ENV, **env}, timeout=600,
    )  # fmt: skip


def assert_fits(output: str, width: int = 80) -> list[str]:
    lines = _ESCAPES.sub("", output).splitlines()
    wide = [line for line in lines if len(line) > width]
    assert not wide, f"{len(wide)} line(s) over {width} columns:\n" + "\n".join(wide)
    assert not any("…" in line for line in lines), output  # nothing cut with an ellipsis
    return lines


@pytest.fixture
def own_run(tmp_path: Path, tiny_run: Path) -> Path:
    """A copy of the tiny run (evaluate and explain --evaluate save into the run)."""
    return Path(shutil.copytree(tiny_run, tmp_path / "run"))


# --- the progress bar ------------------------------------------------------------------------


def test_progress_bar_fits_with_every_figure() -> None:
    console = Console(file=io.StringIO(), width=80, force_terminal=False)
    progress = BarProgress(console)
    progress.start("train", total=12000)
    progress.advance("train", 11000, loss=0.123456, samples_per_s=1234.5, epoch=3, epsilon=7.89)
    progress.start("explain (integrated-gradients)", total=250_000)
    progress.advance("explain (integrated-gradients)", 5)
    progress.start("encrypt", total=98_765_432_100)  # bytes: a long count
    for task in ("encrypt", "explain (integrated-gradients)", "train"):
        progress.end(task)
    assert isinstance(console.file, io.StringIO)
    lines = assert_fits(console.file.getvalue())
    training = next(line for line in lines if line.startswith("training "))
    assert "━" in training and "11000/12000" in training and "ETA" in training
    assert "loss 0.1235  1234 samples/s  epoch 3  ε 7.89" in console.file.getvalue()
    # (the empty part of a bar prints as spaces without colours)
    assert any(
        line.startswith("explain (integrated-gradients) ") and "5/250000 0:00:00 ETA" in line
        for line in lines
    )
    assert any(
        line.startswith("encrypt ") and "0/98765432100 0:00:00 ETA" in line for line in lines
    )


def test_evaluate_shows_a_progress_bar_in_80_columns(
    own_run: Path, demo_files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    test = demo_files[1]
    result = trustune("evaluate", own_run, "--data", test, "--no-speed")
    assert result.returncode == 0, result.stderr
    bar = [line for line in assert_fits(result.stderr) if line.startswith("evaluating ")]
    assert len(bar) == 1 and "━" in bar[0] and "32/32" in bar[0], result.stderr
    lines = assert_fits(result.stdout)
    assert any(line.startswith("│ accuracy") for line in lines)
    # --quiet: in this process (the model libraries are loaded already)
    assert main(["evaluate", str(own_run), "--data", str(test), "--no-speed", "--quiet"]) == 0
    captured = capsys.readouterr()
    assert "accuracy" in captured.out and "evaluating" not in captured.err, captured.err


# --- tables ----------------------------------------------------------------------------------


def test_faithfulness_table_fits_80_columns(own_run: Path, demo_files: tuple[Path, Path]) -> None:
    result = trustune(
        "explain", own_run, "--data", demo_files[1], "--evaluate", "--method",
        "integrated-gradients", "--sample", "4", "--steps", "4",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert_fits(result.stderr)
    lines = assert_fits(result.stdout)
    header = next(line for line in lines if "method" in line)
    assert all(name in header for name in ("compr. ↑", "× random", "suff. ↓", "s / text"))
    rows = {line.split()[1]: line.split()[2:] for line in lines if line.startswith("│ ")}
    assert set(rows) == {"integrated-gradients", "random"}
    assert re.fullmatch(r"-?\d\.\d{4}", rows["integrated-gradients"][1])  # comprehensiveness
    assert "comprehensiveness" in result.stdout and "sufficiency" in result.stdout  # the caption


def test_keys_list_fits_80_columns(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'keys.db'}"
    name = "the web console of the support team"
    with Store.open(db, create=True) as store:
        web, _ = store.create_key(
            name=name, role=Role.EXPLAIN,
            expires_at=datetime.now(UTC) + timedelta(days=30, minutes=5),
        )  # fmt: skip
        bot, _ = store.create_key(name="bot", role=Role.ADMIN, rate_per_s=1500.5, burst=3000)
        store.revoke_key(bot.id)
    result = trustune("keys", "list", "--db", db)
    assert result.returncode == 0, result.stderr
    lines = assert_fits(result.stdout)
    header = next(line for line in lines if line.startswith("id "))
    assert header.split() == ["id", "name", "role", "status", "created", "expires", "rate/s",
                              "burst"]  # fmt: skip
    rows = {line.split()[0]: line for line in lines if line.startswith("k_")}
    created = r"(now|\d+m ago)"
    assert re.fullmatch(
        rf"{web.id}\s+the .*\s+explain\s+active\s+{created}\s+in 30d\s+20\s+40\s*", rows[web.id]
    ), rows[web.id]
    assert re.fullmatch(
        rf"{bot.id}\s+bot\s+admin\s+revoked\s+{created}\s+never\s+1500\.5\s+3000\s*", rows[bot.id]
    ), rows[bot.id]
    assert all(word in result.stdout for word in name.split())
    assert "exact times (UTC): trustune keys list --json" in result.stdout


# --- colours of the terminal heat map --------------------------------------------------------


def _explanation() -> Explanation:
    words = ["refund", "my", "card", "twice", "please"]
    scores = [1.0, 0.1, 0.6, -0.9, -0.4]  # strong for, weak, medium, strong against, medium
    spans, start = [], 0
    for word in words:
        spans.append((start, start + len(word)))
        start += len(word) + 1
    return Explanation(
        text=" ".join(words), words=tuple(words), scores=tuple(scores), spans=tuple(spans),
        target="billing", predicted="billing", probabilities={"billing": 0.9, "other": 0.1},
        method="occlusion",
    )  # fmt: skip


def _styled(color_system: str | None) -> dict[str, str]:
    """The escape codes of each word as a console of ``color_system`` prints them."""
    console = Console(
        file=io.StringIO(), force_terminal=True, color_system=color_system,  # type: ignore[arg-type]
        width=200,
    )  # fmt: skip
    console.print(terminal_text(_explanation(), color_system=console.color_system))
    assert isinstance(console.file, io.StringIO)
    out = console.file.getvalue()
    return {word: code for code, word in re.findall(r"\x1b\[([0-9;]+)m(\w+)", out)} | {"": out}


def test_truecolor_keeps_the_smooth_scale() -> None:
    styled = _styled("truecolor")
    assert styled["refund"] == "1;38;2;22;163;74"  # full green, bold
    assert styled["twice"].startswith("1;38;2;")  # bold, near full red
    assert "38;2;" in styled["my"]  # weak words stay near grey


def test_256_colours_use_distinct_palette_steps() -> None:
    styled = _styled("256")
    assert "38;2;" not in styled[""]
    assert styled["refund"] == "1;38;5;34" and styled["card"] == "1;38;5;35"
    assert styled["twice"] == "1;38;5;160" and styled["please"] == "38;5;131"
    assert styled["my"] == "38;5;108"


def test_16_colours_show_the_sign() -> None:
    styled = _styled("standard")
    assert "38;" not in styled[""]  # no 256 or RGB colours
    assert styled["refund"] == "1;32" and styled["card"] == "1;32"  # bold green
    assert styled["twice"] == "1;31" and styled["please"] == "31"  # red, bold when strong
    assert "my" not in styled  # the weakest word is plain


def test_no_colour_system_prints_plain_text() -> None:
    assert "\x1b[" not in _styled(None)[""]
    with pytest.raises(ValueError, match="unknown color_system 'sixteen'; known: truecolor"):
        terminal_text(_explanation(), color_system="sixteen")


def test_explain_follows_the_terminals_colours(tiny_run: Path) -> None:
    env = {"FORCE_COLOR": "1", "TERM": "xterm", "COLORTERM": ""}  # a 16-colour terminal
    result = trustune(
        "explain", tiny_run, "--text", "my card was charged twice", "--steps", "8", **env
    )
    assert result.returncode == 0, result.stderr
    assert re.search(r"\x1b\[(1;)?3[12]m", result.stdout), repr(result.stdout)
    assert "38;2;" not in result.stdout and "38;5;" not in result.stdout


# --- train --help ----------------------------------------------------------------------------


def test_train_help_groups_flags_and_shows_examples_that_parse() -> None:
    result = trustune("train", "--help")
    assert result.returncode == 0, result.stderr
    lines = assert_fits(result.stdout)
    groups = [line[:-1] for line in lines if re.fullmatch(r"\w[\w ()]*:", line)]
    assert groups == [
        "options", "data (YAML section data)", "task (YAML section task)",
        "model (YAML section model)", "training (YAML section train)",
        "privacy (YAML section privacy)", "output and run control", "examples",
    ]  # fmt: skip
    section = result.stdout.split("privacy (YAML section privacy):")[1].split("\n\n")[0]
    assert "--dp-epsilon" in section and "--epochs" not in section
    assert 3 <= len(EXAMPLES) <= 5
    for _, command in EXAMPLES:
        assert f"  {command}\n" in result.stdout
        words = shlex.split(command)
        assert words[:2] == ["trustune", "train"]
        args = build_parser().parse_args(words[1:])  # exits on a flag or value it refuses
        assert args.command == "train"


def test_every_help_fits_80_columns(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import argparse

    monkeypatch.setenv("COLUMNS", "80")

    def commands(
        parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()
    ) -> list[tuple[str, ...]]:
        found = [prefix]
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    found += commands(child, (*prefix, name))
        return found

    for command in commands(build_parser()):
        with pytest.raises(SystemExit):
            build_parser().parse_args([*command, "--help"])
        out = capsys.readouterr().out
        wide = [line for line in out.splitlines() if len(line) > 80]
        assert not wide, f"trustune {' '.join(command)} --help: {wide}"
