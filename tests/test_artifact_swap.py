"""Replacing a folder: a command cut between the two renames, or killed mid-write, is repaired."""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import trustune
from trustune.artifact import atomic_dir, discard_staging, recover_dir, recover_run, staging_dir
from trustune.security import decrypt_run, encrypt_run, generate_key, read_key_file, write_key_file

TEXTS = ["I was charged twice this month", "the app crashes on start"]
ENV = {
    **{k: v for k, v in os.environ.items() if not k.startswith("TRUSTUNE_")},
    "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1",
}  # fmt: skip


def _snapshot(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _folder(path: Path, text: str) -> Path:
    path.mkdir()
    (path / "a.txt").write_text(text, encoding="utf-8")
    return path


def _killed(script: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run ``script`` in a fresh interpreter that kills itself with SIGKILL at the crash point."""
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), *map(str, args)],
        capture_output=True, text=True, env=ENV, timeout=300,
    )  # fmt: skip
    assert result.returncode == -signal.SIGKILL, result.stderr
    return result


def test_a_failed_second_rename_puts_the_old_folder_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = _folder(tmp_path / "run", "old")
    real, calls = os.replace, []

    def second_fails(src: str | Path, dst: str | Path) -> None:
        calls.append(src)
        if len(calls) == 2:  # the new folder into place
            raise OSError(errno.EIO, "Input/output error")
        real(src, dst)

    monkeypatch.setattr(os, "replace", second_fails)
    with pytest.raises(OSError, match="Input/output error"), atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("new", encoding="utf-8")
    monkeypatch.undo()
    assert (target / "a.txt").read_text(encoding="utf-8") == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["run"]


def test_in_place_encrypt_cut_between_the_renames_is_finished_by_load(
    tmp_path: Path, tiny_run: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    run = tmp_path / "plain"
    shutil.copytree(tiny_run, run)
    expected = trustune.load(run).predict_proba(TEXTS)
    key = generate_key()
    real = os.replace

    def cut(src: str | Path, dst: str | Path) -> None:
        if Path(src).name.startswith((".plain.tmp-", ".plain.old-")):
            raise OSError(errno.EIO, "Input/output error")  # the new run in, and the way back
        real(src, dst)

    monkeypatch.setattr(os, "replace", cut)
    with pytest.raises(OSError):
        encrypt_run(run, key=key)
    monkeypatch.undo()
    assert not run.exists()
    old = tmp_path / f".plain.old-{os.getpid()}"
    assert (old / "model" / "model.safetensors").is_file()  # only the hidden plaintext is left
    with caplog.at_level(logging.WARNING, logger="trustune"):
        model = trustune.load(run, key=key)
    assert "finished replacing" in caplog.text and str(run) in caplog.text
    assert (run / "model" / "model.safetensors.enc").is_file()
    assert (model.predict_proba(TEXTS) == expected).all()
    assert [p.name for p in tmp_path.iterdir()] == ["plain"]


def test_in_place_encrypt_killed_between_the_renames(
    tmp_path: Path, tiny_run: Path, caplog: pytest.LogCaptureFixture
) -> None:
    run = tmp_path / "plain"
    shutil.copytree(tiny_run, run)
    expected = trustune.load(run).predict_proba(TEXTS)
    key_file = write_key_file(tmp_path / "k.key", generate_key())
    _killed(
        """
        import os, signal, sys
        from pathlib import Path
        from trustune.security import encrypt_run, read_key_file

        run, real = Path(sys.argv[1]), os.replace

        def replace(src, dst):
            real(src, dst)
            if Path(src) == run:  # the run was moved aside: die before the new one moves in
                os.kill(os.getpid(), signal.SIGKILL)

        os.replace = replace
        encrypt_run(run, key=read_key_file(sys.argv[2]))
        """,
        run, key_file,
    )  # fmt: skip
    assert not run.exists()
    leftovers = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".plain."))
    assert [n.split("-")[0] for n in leftovers] == [".plain.old", ".plain.tmp"]
    with caplog.at_level(logging.WARNING, logger="trustune"):
        model = trustune.load(run, key=read_key_file(key_file))
    assert "finished replacing" in caplog.text
    assert (model.predict_proba(TEXTS) == expected).all()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.key", "plain"]


def test_decrypt_killed_mid_write_leaves_plaintext_that_the_next_run_removes(
    tmp_path: Path, tiny_run: Path, caplog: pytest.LogCaptureFixture
) -> None:
    key_file = write_key_file(tmp_path / "k.key", generate_key())
    sealed = encrypt_run(tiny_run, key=read_key_file(key_file), output=tmp_path / "sealed")
    out = tmp_path / "out"
    _killed(
        """
        import os, signal, sys
        from pathlib import Path
        import trustune.security.artifact as sealing
        from trustune.security import read_key_file

        real, written = sealing.open_stream, []

        def open_stream(*args, **kwargs):
            real(*args, **kwargs)
            written.append(kwargs["name"])
            if len(written) == 2:  # two plaintext files on disk, the rest not yet
                os.kill(os.getpid(), signal.SIGKILL)

        sealing.open_stream = open_stream
        sealing.decrypt_run(sys.argv[1], key=read_key_file(sys.argv[2]), output=sys.argv[3])
        """,
        sealed, key_file, out,
    )  # fmt: skip
    [partial] = [p for p in tmp_path.iterdir() if p.name.startswith(".out.tmp-")]
    assert sum(1 for p in partial.rglob("*") if p.is_file()) == 2  # plaintext left behind
    with caplog.at_level(logging.WARNING, logger="trustune"):
        decrypt_run(sealed, key=read_key_file(key_file), output=out)
    assert f"removed {partial.name}" in caplog.text
    assert not partial.exists()
    assert _snapshot(out / "model") == _snapshot(tiny_run / "model")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.key", "out", "sealed"]


def test_live_writers_are_left_alone_and_old_leftovers_are_repaired(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    target = tmp_path / "run"
    building = staging_dir(target)  # this process is writing it
    other = tmp_path / f".run.tmp-{os.getppid()}-abc"  # a live process is writing it
    other.mkdir()
    gone = tmp_path / ".run.tmp-999999999-xyz"  # no such process
    gone.mkdir()
    assert len(recover_dir(target)) == 1
    assert building.is_dir() and other.is_dir() and not gone.exists()
    legacy = _folder(tmp_path / ".run.old", "previous")  # left by trustune before pids
    with caplog.at_level(logging.WARNING, logger="trustune"):
        assert recover_run(target) == [f"restored {target} from .run.old, where an interrupted "
                                       "trustune command had moved it"]  # fmt: skip
    assert (target / "a.txt").read_text(encoding="utf-8") == "previous"
    assert not legacy.exists() and "restored" in caplog.text
    child = _folder(target / f".model.old-{999999999}", "stale")
    _folder(target / "model", "current")
    recover_run(target)
    assert not child.exists() and (target / "model" / "a.txt").read_text() == "current"
    assert recover_run(target) == []
    discard_staging(building)
