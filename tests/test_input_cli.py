"""The CLI against hostile input: markup in user text, keys given as paths, bad paths, full disks."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from trustune.cli import main as cli_main
from trustune.cli import predict as cli_predict
from trustune.security import encrypt_run, generate_key

ENV = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}
ENV.pop("TRUSTUNE_KEY_FILE", None)
ENV.pop("TRUSTUNE_KEY", None)


def cli(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trustune.cli.main", *map(str, args)],
        capture_output=True, text=True, env={**ENV, **(env or {})}, timeout=600,
    )  # fmt: skip


def _error_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


KEY_HINT = "looks like a key, not a path; put the key in a file (mode 0600) and pass its path"


def test_a_key_given_as_a_path_is_never_echoed(tmp_path: Path, tiny_run: Path) -> None:
    import trustune
    from trustune.errors import MissingKeyError

    key = generate_key(lambda n: bytes((i * 37 + 11) % 256 for i in range(n)))  # fixed
    line = key.to_text()
    secret = line.split(":", 1)[1]
    result = cli("predict", tmp_path / "run", "--text", "hi", "--key-file", line)
    assert result.returncode == 2
    assert _error_line(result) == f"error: the --key-file value {KEY_HINT}"
    assert secret not in result.stdout + result.stderr

    result = cli("predict", tmp_path / "run", "--text", "hi", env={"TRUSTUNE_KEY_FILE": secret})
    assert result.returncode == 2
    assert _error_line(result) == f"error: $TRUSTUNE_KEY_FILE {KEY_HINT}"
    assert secret not in result.stdout + result.stderr

    sealed = encrypt_run(tiny_run, key=key, output=tmp_path / "sealed")
    with pytest.raises(MissingKeyError) as e:
        trustune.load(sealed, key=line)
    assert str(e.value) == f"the key argument {KEY_HINT}"
    assert secret not in str(e.value) and secret not in repr(e.value)
    # A real path still says which file is missing.
    with pytest.raises(MissingKeyError, match=r"key file .*keys/prod.key does not exist"):
        trustune.load(sealed, key=str(tmp_path / "keys" / "prod.key"))


MARKUP_TEXTS = ["refund [/] please", "[bold red]loud[/] and :smile:"]


def test_markup_in_texts_labels_and_paths_prints_as_typed(tmp_path: Path, tiny_model: Path) -> None:
    rows = [("refund my card please", "[/]"), ("the app crashes on start", "[bold]b[/]")] * 24
    data = tmp_path / "data.csv"
    with open(data, "w", encoding="utf-8", newline="") as f:
        import csv

        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows((f"{t} {i}", label) for i, (t, label) in enumerate(rows))
    run = tmp_path / "run"
    result = cli("train", "--data", data, "--model", tiny_model, "--output", run, "--epochs",
                      "1", "--batch-size", "16", "--quiet", "--no-speed", "--max-chars", "40")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "[/]" in result.stdout and "[bold]b[/]" in result.stdout  # the per-class table

    result = cli("predict", run, *(a for t in MARKUP_TEXTS for a in ("--text", t)))
    assert result.returncode == 0, result.stderr
    for text in MARKUP_TEXTS:
        assert text in result.stdout
    long = "w" * 60
    result = cli("predict", run, "--text", long, "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)[0]["text"] == "w" * 40  # data.max_chars of the run
    assert "1 text(s) were longer than 40 characters (data.max_chars)" in result.stderr

    result = cli("evaluate", run, "--data", data, "--no-speed")
    assert result.returncode == 0, result.stderr
    assert "[/]" in result.stdout and "[bold]b[/]" in result.stdout

    result = cli("explain", run, "--data", data, "--global", "--max-rows", "8", "--steps",
                      "4", "--min-count", "1", "--quiet")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "top words of [/]" in result.stdout and "top words of [bold]b[/]" in result.stdout

    deep = tmp_path / "deep.jsonl"
    deep.write_text('{"text": "ok"}\n{"text": ' + "[" * 50_000 + "]" * 50_000 + "}\n")
    result = cli("predict", run, "--input", deep, "--output", tmp_path / "p.jsonl")
    assert result.returncode == 2
    assert _error_line(result) == f"error: {deep} line 2: JSON nested too deeply"


def test_the_error_handler_prints_markup_as_typed(tmp_path: Path) -> None:
    folder = tmp_path / "[bold red]x[/]"
    result = cli("predict", folder, "--text", "hi")
    assert result.returncode == 2
    assert str(folder) in _error_line(result)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--output", "{tmp}/file.txt/run"],
            "--output {tmp}/file.txt/run: {tmp}/file.txt is a file",
        ),
        (["--output", "{tmp}/file.txt"], "--output {tmp}/file.txt is a file, not a folder"),
        (["--lr", "inf"], "train.lr: inf is not allowed, it must be a finite number > 0"),
        (["--lr", "nan"], "train.lr: nan is not a number"),
    ],
)
def test_train_refuses_before_any_work(
    tmp_path: Path, demo_files: tuple[Path, Path], args: list[str], message: str
) -> None:
    (tmp_path / "file.txt").write_text("not a folder", encoding="utf-8")
    result = cli("train", "--data", demo_files[0], "--model", tmp_path / "no-model",
                      *(a.format(tmp=tmp_path) for a in args))  # fmt: skip
    assert result.returncode == 2
    assert message.format(tmp=tmp_path) in _error_line(result)
    assert (tmp_path / "file.txt").read_text(encoding="utf-8") == "not a folder"


def test_predict_refuses_to_overwrite_its_input(tmp_path: Path) -> None:
    source = tmp_path / "texts.csv"
    source.write_text("text\nhello\n", encoding="utf-8")
    link = tmp_path / "same.csv"
    os.link(source, link)
    for output in (source, tmp_path / "." / "texts.csv", link):
        result = cli("predict", tmp_path / "run", "--input", source, "--output", output)
        assert result.returncode == 2
        assert "is the --input file; write the predictions to another file" in _error_line(result)
    assert source.read_text(encoding="utf-8") == "text\nhello\n"


def _failing(error: BaseException) -> Any:
    def run(args: Any) -> int:
        raise error

    return run


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (
            OSError(errno.ENOSPC, "No space left on device", "/data/out/pred.jsonl"),
            "error: no space left on device writing /data/out/pred.jsonl; free space or choose "
            "another --output",
        ),
        (
            OSError(errno.EDQUOT, "Disk quota exceeded"),
            "error: no space left on device writing /data/out/pred.jsonl; free space",
        ),
        (
            RuntimeError("Error while serializing: IoError(Os { code: 28, kind: StorageFull })"),
            "error: no space left on device writing /data/out/pred.jsonl",
        ),
        (
            RecursionError("maximum recursion depth exceeded"),
            "error: the input is nested too deeply",
        ),
        (MemoryError(), "error: out of memory (MemoryError); use a smaller input or --batch-size"),
        (ValueError("x" * 100_000), "internal error: ValueError: xxx"),
    ],
)
def test_last_resort_errors_are_named_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], error: Exception,
    message: str,
) -> None:  # fmt: skip
    monkeypatch.setattr(cli_predict, "run", _failing(error))
    code = cli_main.main(["predict", "r", "--input", "in.csv", "--output", "/data/out/pred.jsonl"])
    err = capsys.readouterr().err
    assert code == (1 if isinstance(error, ValueError) else 2)
    assert err.count("\n") == 1 and err.startswith(message)
    assert len(err) < 2100
