"""The security commands: the round trip through the real `trustune` command (subprocesses)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import trustune
from trustune.cli.main import main
from trustune.cli.predict import prediction_fields

ENV = {
    **{k: v for k, v in os.environ.items() if not k.startswith("TRUSTUNE_")},
    "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1", "COLUMNS": "200",
}  # fmt: skip
COMMANDS = ("keygen", "encrypt", "decrypt", "rekey", "signing-keygen", "sign", "verify")
TEXTS = ["refund my card", "the app crashes"]


def trustune_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trustune.cli.main", *map(str, args)],
        capture_output=True, text=True, env=ENV, timeout=300,
    )  # fmt: skip


def in_process(*args: str | Path) -> int:
    return main([str(a) for a in args])


def test_help_on_every_security_command(capsys: pytest.CaptureFixture[str]) -> None:
    for command in COMMANDS:
        with pytest.raises(SystemExit) as exited:
            in_process(command, "--help")
        assert exited.value.code == 0
        assert f"usage: trustune {command}" in capsys.readouterr().out
    for command in ("predict", "evaluate", "explain"):
        with pytest.raises(SystemExit):
            in_process(command, "--help")
        assert "--key-file KEY" in capsys.readouterr().out


def test_encrypt_predict_rekey_sign_verify_decrypt(
    tmp_path: Path, tiny_run: Path, demo_files: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    for name in ("TRUSTUNE_KEY", "TRUSTUNE_KEY_FILE", "TRUSTUNE_PASSPHRASE"):
        monkeypatch.delenv(name, raising=False)
    run, sealed, key, new_key = (tmp_path / n for n in ("run", "sealed", "k.key", "new.key"))
    shutil.copytree(tiny_run, run)
    expected = [p.to_dict() for p in trustune.load(run).predict(TEXTS)]

    assert in_process("keygen", "--output", key) == 0
    assert "key id" in capsys.readouterr().out
    assert in_process("keygen", "--output", new_key) == 0
    assert in_process("keygen", "--output", key) == 2  # never overwrites a key
    assert "already exists" in capsys.readouterr().err

    result = trustune_cli("encrypt", run, "--key-file", key, "--output", sealed, "--quiet")
    assert result.returncode == 0, result.stderr
    assert "encrypted" in result.stdout and (sealed / "model" / "model.safetensors.enc").is_file()

    args = [a for t in TEXTS for a in ("--text", t)]
    result = trustune_cli("predict", sealed, *args, "--json", "--key-file", key)
    assert result.returncode == 0, result.stderr
    assert [{k: v for k, v in p.items() if k != "text"} for p in json.loads(result.stdout)] == [
        prediction_fields(trustune.Prediction(**p)) for p in expected
    ]

    assert in_process("predict", sealed, "--text", "x") == 2
    error = capsys.readouterr().err
    assert "is encrypted; pass its key with --key-file KEY" in error and error.count("\n") == 1

    assert in_process("rekey", sealed, "--key-file", key, "--new-key-file", new_key) == 0
    assert "now opens with key id" in capsys.readouterr().out
    assert in_process("decrypt", sealed, "--key-file", key, "--output", tmp_path / "out") == 2
    assert "the key does not open" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()

    signer = tmp_path / "signer"
    assert in_process("signing-keygen", "--output", signer) == 0
    assert in_process("sign", sealed, "--signing-key", signer) == 0
    assert in_process("verify", sealed, "--public-key", f"{signer}.pub") == 0
    assert "signature valid" in capsys.readouterr().out

    monkeypatch.setenv("TRUSTUNE_KEY_FILE", str(new_key))  # the key from the environment
    assert in_process("evaluate", sealed, "--data", demo_files[1], "--json", "--no-speed") == 0
    assert json.loads(capsys.readouterr().out)["data"]["rows"] == 32
    monkeypatch.delenv("TRUSTUNE_KEY_FILE")
    assert in_process("explain", sealed, "--text", TEXTS[0], "--steps", "4", "--format", "json",
                      "--key-file", new_key) == 0  # fmt: skip
    assert json.loads(capsys.readouterr().out)[0]["predicted"] == expected[0]["label"]
    assert in_process("verify", sealed, "--public-key", f"{signer}.pub") == 2  # evaluate changed it
    assert "does not match its manifest" in capsys.readouterr().err

    assert in_process("decrypt", sealed, "--key-file", new_key, "--output", tmp_path / "out") == 0
    original = (run / "model" / "model.safetensors").read_bytes()
    assert (tmp_path / "out" / "model" / "model.safetensors").read_bytes() == original


def test_passphrase_from_the_environment(
    tmp_path: Path, tiny_run: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.setenv("TRUSTUNE_PASSPHRASE", "short")
    assert in_process("encrypt", tiny_run, "--passphrase", "--output", tmp_path / "x") == 2
    assert "fewer than 8 characters" in capsys.readouterr().err
    monkeypatch.delenv("TRUSTUNE_PASSPHRASE")
    monkeypatch.setattr(sys, "stdin", open(os.devnull))  # noqa: SIM115 (not a terminal)
    assert in_process("encrypt", tiny_run, "--passphrase", "--output", tmp_path / "x") == 2
    assert "set $TRUSTUNE_PASSPHRASE, or run in a terminal" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
