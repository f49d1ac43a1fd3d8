"""Every command shown in README.md and docs/ is checked against the real CLI, and the README's
tour is run as written (with the tiny model and small files in place of the user's)."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from trustune.cli.main import build_parser

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
ENV = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}
_SHELL_FENCES = {"", "bash", "sh", "shell", "console"}


def shell_lines(path: Path) -> list[str]:
    """The lines of the shell code blocks of a Markdown file, continuations joined."""
    lines: list[str] = []
    fence: str | None = None
    pending = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        opening = re.match(r"\s*```(\w*)", raw)
        if opening:
            fence = None if fence is not None else opening.group(1)
            continue
        if fence not in _SHELL_FENCES:
            continue
        line = raw.strip()
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        lines.append(re.sub(r"^\$\s+", "", pending + line))
        pending = ""
    return lines


def documented_commands() -> list[tuple[str, str]]:
    """(file, command) for every `trustune ...` command in the docs, split at `|` and `&&`."""
    found = []
    for path in DOCS:
        for line in shell_lines(path):
            code = line.split(" #", 1)[0].strip()
            code = re.sub(r"^(\w+=\S+\s+)+", "", code)  # VAR=value prefixes
            if code.startswith("accelerate launch -m trustune.cli.main "):
                code = "trustune " + code.removeprefix("accelerate launch -m trustune.cli.main ")
            for part in re.split(r"\s(?:\||&&)\s", code):
                if part.startswith("trustune "):
                    found.append((path.name, part.strip()))
    return found


def _subparsers(parser: object) -> dict[str, object]:
    import argparse

    assert isinstance(parser, argparse.ArgumentParser)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def check_command(command: str) -> None:
    """The subcommand exists and every flag it shows, optional ones included, is accepted."""
    import argparse

    words = shlex.split(command.replace("[", " ").replace("]", " "))[1:]
    parser: object = build_parser()
    path = ["trustune"]
    while words and (choices := _subparsers(parser)):
        assert words[0] in choices, f"{' '.join(path)} has no command {words[0]!r}"
        path.append(words[0])
        parser = choices[words.pop(0)]
    assert isinstance(parser, argparse.ArgumentParser)
    known = {flag for action in parser._actions for flag in action.option_strings}
    known.add("--debug")
    for word in words:
        flag = word.split("=", 1)[0]
        if flag.startswith("--"):
            assert flag in known, f"`{' '.join(path)}` has no option {flag} (shown: {command})"


def test_docs_show_commands() -> None:
    commands = documented_commands()
    assert len(commands) >= 40
    assert {name for name, _ in commands} >= {"README.md", "serving.md", "security.md"}


@pytest.mark.parametrize("command", [c for _, c in documented_commands()])
def test_documented_command_exists(command: str) -> None:
    check_command(command)


def test_check_command_catches_a_wrong_flag() -> None:
    with pytest.raises(AssertionError, match="has no option --no-such-flag"):
        check_command("trustune predict runs/NAME [--no-such-flag X]")
    with pytest.raises(AssertionError, match="has no command 'frobnicate'"):
        check_command("trustune frobnicate runs/NAME")


# --- the README tour, run as written ---------------------------------------------------------


def readme_command(prefix: str) -> str:
    """The README's command that starts with ``prefix``, optional [parts] and comments removed."""
    for _, command in documented_commands():
        plain = re.sub(r"\s*\[[^\]]*\]", "", command)
        plain = re.sub(r"\s+", " ", plain).strip()
        if plain.startswith(prefix):
            return plain
    raise AssertionError(f"the README no longer shows a command starting with {prefix!r}")


class Tour:
    """Runs README commands in one working folder, with extra flags where the README's are
    placeholders for the user's choice (the model, a port)."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd

    def run(self, prefix: str, *extra: str, timeout: float = 600) -> str:
        command = readme_command(prefix)
        words = shlex.split(command)
        assert words[0] == "trustune"
        result = subprocess.run(
            [sys.executable, "-m", "trustune.cli.main", *words[1:], *extra],
            cwd=self.cwd, capture_output=True, text=True, env=ENV, timeout=timeout,
        )  # fmt: skip
        assert result.returncode == 0, f"{command}: {result.stderr}"
        return result.stdout


@pytest.fixture
def tour(tmp_path: Path, demo_files: tuple[Path, Path]) -> Tour:
    train, test = demo_files
    shutil.copy(train, tmp_path / "tickets.csv")
    shutil.copy(train, tmp_path / "train.csv")
    shutil.copy(test, tmp_path / "test.csv")
    shutil.copy(test, tmp_path / "held_out.csv")
    shutil.copy(test, tmp_path / "texts.csv")
    return Tour(tmp_path)


@pytest.mark.slow
def test_readme_tour(tour: Tour, tiny_model: Path) -> None:
    tiny = ["--model", str(tiny_model), "--epochs", "1", "--batch-size", "16", "--lr", "1e-3"]
    out = tour.run("trustune train --data tickets.csv", *tiny, "--output", "runs/NAME",
                   "--quiet", "--no-speed")  # fmt: skip
    assert (tour.cwd / "runs/NAME/trustune.json").is_file()
    assert "accuracy" in tour.run("trustune evaluate runs/NAME --data test.csv", "--no-speed")
    assert tour.run('trustune predict runs/NAME --text "my card was charged twice"').strip()
    tour.run("trustune predict runs/NAME --input texts.csv --output predictions.jsonl")
    assert (tour.cwd / "predictions.jsonl").read_text(encoding="utf-8").count("\n") >= 10
    tour.run('trustune explain runs/NAME --text "my card was charged twice"')
    tour.run("trustune explain runs/NAME --data test.csv --output explained.jsonl")
    assert (tour.cwd / "explained.jsonl").is_file()

    tour.run("trustune keygen --output run.key")
    tour.run("trustune encrypt runs/NAME --key-file run.key", "--output", "runs/NAME-sealed")
    out = tour.run('trustune predict runs/NAME-sealed --key-file run.key --text "..."')
    assert out.strip()
    subprocess.run(
        [sys.executable, "-m", "trustune.cli.main", "keygen", "--output", "new.key"],
        cwd=tour.cwd, check=True, capture_output=True, env=ENV,
    )  # fmt: skip
    tour.run("trustune rekey runs/NAME-sealed --key-file run.key --new-key-file new.key")
    tour.run("trustune signing-keygen --output signer")
    tour.run("trustune sign runs/NAME --signing-key signer")
    tour.run("trustune verify runs/NAME --public-key signer.pub")

    out = tour.run("trustune train --data tickets.csv --dp-epsilon 8", *tiny, "--quiet",
                   "--no-speed")  # fmt: skip
    assert (tour.cwd / "runs/private/trustune.json").is_file()
    tour.run("trustune audit privacy runs/private --members train.csv --non-members held_out.csv")


@pytest.fixture
def served(tour: Tour, tiny_run: Path) -> Iterator[tuple[Tour, str, int]]:
    """`trustune keys create` and `trustune serve` from the README, on a free loopback port."""
    from test_serve_support import free_port

    shutil.copytree(tiny_run, tour.cwd / "runs/NAME")
    out = tour.run("trustune keys create --name web --role explain")
    secret = re.search(r"tt_\S+", out)
    assert secret is not None, out
    port = free_port()
    words = shlex.split(readme_command("trustune serve runs/NAME"))
    server = subprocess.Popen(
        [sys.executable, "-m", "trustune.cli.main", *words[1:], "--port", str(port)],
        cwd=tour.cwd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        import httpx

        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, server.communicate()[1]
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the server did not become ready in 120 s"
            time.sleep(0.2)
        yield tour, secret.group(0), port
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs the curl command")
def test_readme_curl_and_key_commands(served: tuple[Tour, str, int]) -> None:
    tour, secret, port = served
    readme_curl = next(c for _, c in _curl_lines() if c.startswith("curl -H"))
    docs_curl = next(c for _, c in _curl_lines() if c.startswith("curl -s"))
    for line in (readme_curl, docs_curl):
        words = [
            w.replace("tt_...", secret).replace("$KEY", secret).replace(":8000", f":{port}")
            for w in shlex.split(line)
        ]
        result = subprocess.run(words, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        answer = json.loads(result.stdout)
        assert "predictions" in answer, f"{line} answered {result.stdout}"
        assert len(answer["predictions"]) == 1
    assert "web" in tour.run("trustune keys list")
    assert "/v1/predict" in tour.run("trustune audit log --since 1h")
    tour.run("trustune audit prune --older-than 90d")


def _curl_lines() -> list[tuple[str, str]]:
    return [(p.name, line) for p in DOCS for line in shell_lines(p) if line.startswith("curl ")]
