"""Signing and verifying runs: any changed, missing or extra file fails."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import pickle
import shutil
from pathlib import Path
from typing import Any

import pytest

import trustune
from trustune.errors import IntegrityError, MissingKeyError, SecurityError, SignatureError
from trustune.security import (
    PublicKey,
    SigningKey,
    canonical_manifest,
    encrypt_run,
    generate_key,
    generate_signing_key,
    read_public_key,
    read_signing_key,
    rekey_run,
    sign_run,
    verify_run,
    write_signing_key,
)
from trustune.security.signing import signature_record


@pytest.fixture
def signed_run(tmp_path: Path, tiny_run: Path) -> tuple[Path, Path]:
    """A copy of the tiny run, signed; returns the run and the signing key file."""
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    private, _ = write_signing_key(tmp_path / "signer", generate_signing_key())
    sign_run(run, read_signing_key(private))
    return run, private


def _public(private: Path) -> PublicKey:
    return read_public_key(private.with_name(private.name + ".pub"))


def test_sign_then_verify_passes_and_lists_every_file(signed_run: tuple[Path, Path]) -> None:
    run, private = signed_run
    result = verify_run(run, _public(private))
    manifest = json.loads((run / "trustune.json").read_text(encoding="utf-8"))
    files = set(manifest["files"])
    assert {"model/model.safetensors", "metrics.json", "report.html"} <= files
    assert "trustune.json" not in files and "trustune.sig" not in files
    assert result.files == len(files)
    signature = json.loads((run / "trustune.sig").read_text(encoding="utf-8"))
    assert signature["algorithm"] == "Ed25519" and signature["key_id"] == result.key_id


@pytest.mark.parametrize("change", ["byte", "add", "remove"])
def test_a_changed_added_or_removed_file_fails(signed_run: tuple[Path, Path], change: str) -> None:
    run, private = signed_run
    weights = run / "model" / "model.safetensors"
    if change == "byte":
        data = bytearray(weights.read_bytes())
        data[-1] ^= 0x01
        weights.write_bytes(bytes(data))
        expected = "changed: model/model.safetensors"
    elif change == "add":
        (run / "model" / "extra.safetensors").write_bytes(b"x")
        expected = "extra: model/extra.safetensors"
    else:
        (run / "report.html").unlink()
        expected = "missing: report.html"
    with pytest.raises(IntegrityError, match="fails verification") as raised:
        verify_run(run, _public(private))
    assert expected in str(raised.value)
    with pytest.raises(IntegrityError):
        trustune.load(run, public_key=private.with_name(private.name + ".pub"))


def test_a_changed_manifest_or_wrong_key_fails(
    signed_run: tuple[Path, Path], tmp_path: Path
) -> None:
    run, private = signed_run
    other, _ = write_signing_key(tmp_path / "other", generate_signing_key())
    with pytest.raises(SignatureError, match=r"was signed by key id .* not by the public key"):
        verify_run(run, _public(other))
    manifest = json.loads((run / "trustune.json").read_text(encoding="utf-8"))
    manifest["labels"] = list(reversed(manifest["labels"]))
    (run / "trustune.json").write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(SignatureError, match="does not match its manifest"):
        verify_run(run, _public(private))
    (run / "trustune.sig").unlink()
    with pytest.raises(SignatureError, match=r"is not signed \(no trustune.sig\); sign it with"):
        verify_run(run, _public(private))


def test_load_can_require_a_signature(signed_run: tuple[Path, Path]) -> None:
    run, private = signed_run
    public = private.with_name(private.name + ".pub")
    model = trustune.load(run, public_key=public)
    assert model.labels
    (run / "trustune.sig").unlink()
    with pytest.raises(SignatureError, match="is not signed"):
        trustune.load(run, public_key=str(public))


def test_load_uses_exactly_what_was_verified(signed_run: tuple[Path, Path]) -> None:
    """The manifest in memory is the one verified; the weights are the bytes that were hashed."""
    from trustune.manifest import read_manifest
    from trustune.security.loading import VerifiedFolder

    run, private = signed_run
    manifest = read_manifest(run)
    verify_run(run, _public(private), manifest=manifest)
    tampered = dataclasses.replace(manifest, labels=tuple(reversed(manifest.labels or ())))
    with pytest.raises(SignatureError, match="does not match its manifest"):
        verify_run(run, _public(private), manifest=tampered)  # the file on disk is intact
    folder = VerifiedFolder(run, "model", dict(manifest.files))
    assert "model.safetensors" in folder.names() and "config.json" in folder.names()
    weights = run / "model" / "model.safetensors"
    assert folder.read("model.safetensors").tobytes() == weights.read_bytes()
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01
    weights.write_bytes(bytes(data))  # replaced after verification, before loading
    with pytest.raises(IntegrityError, match="changed after the run's signature was verified"):
        folder.read("model.safetensors")


def test_sign_refuses_files_changed_since_the_manifest(tmp_path: Path, tiny_run: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    (run / "model" / "config.json").write_text("{}", encoding="utf-8")
    with pytest.raises(IntegrityError, match=r"no longer matches its manifest \(changed: model"):
        sign_run(run, generate_signing_key())
    assert not (run / "trustune.sig").exists()


def test_encrypted_runs_sign_and_survive_rekeying(tmp_path: Path, tiny_run: Path) -> None:
    key, new_key, signer = generate_key(), generate_key(), generate_signing_key()
    run = encrypt_run(tiny_run, key=key, output=tmp_path / "sealed")
    sign_run(run, signer)
    verify_run(run, signer.public_key())  # no decryption key needed
    rekey_run(run, key=key, new_key=new_key)
    verify_run(run, signer.public_key())  # the key wrapping is not part of the signed bytes
    trustune.load(run, key=new_key, public_key=signer.public_key())
    manifest = json.loads((run / "trustune.json").read_text(encoding="utf-8"))
    manifest["encryption"]["chunk_size"] = 4096
    (run / "trustune.json").write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(SignatureError):
        verify_run(run, signer.public_key())


def test_canonical_form_ignores_formatting_and_key_order() -> None:
    a = {"b": 1, "a": {"y": [1, 2], "x": "é"}, "encryption": {"key_wrap": {"k": 1}, "v": 1}}
    b = {"encryption": {"v": 1, "key_wrap": {"k": 2}}, "a": {"x": "é", "y": [1, 2]}, "b": 1}
    assert canonical_manifest(a) == canonical_manifest(b)
    assert canonical_manifest(a).startswith(b"trustune.manifest.v1\n")
    assert canonical_manifest({"b": 2}) != canonical_manifest({"b": 1})


def test_signing_keys_stay_secret_and_files_are_checked(tmp_path: Path) -> None:
    key = generate_signing_key()
    assert "[secret]" in repr(key) and "PRIVATE" not in repr(key)
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(key)
    private, public = write_signing_key(tmp_path / "s", key)
    assert (private.stat().st_mode & 0o777) == 0o600
    assert read_public_key(public).key_id == key.public_key().key_id
    with pytest.raises(SecurityError, match="is a private key; verify with the public key"):
        read_public_key(private)
    with pytest.raises(MissingKeyError, match=r"signing key .* does not exist"):
        read_signing_key(tmp_path / "missing")
    with pytest.raises(SecurityError, match="already exists"):
        write_signing_key(tmp_path / "s", key)
    (tmp_path / "junk").write_text("not a key", encoding="utf-8")
    with pytest.raises(SecurityError, match="is not an unencrypted Ed25519 private key"):
        read_signing_key(tmp_path / "junk")


GOLDEN = Path(__file__).parent / "golden"


def _golden_run(tmp_path: Path, name: str) -> tuple[Path, dict[str, Any]]:
    """A run folder holding a golden manifest and signature record (no other files)."""
    golden = json.loads((GOLDEN / name).read_text(encoding="utf-8"))
    run = tmp_path / name.removesuffix(".json")
    run.mkdir()
    (run / "trustune.json").write_text(json.dumps(golden["manifest"]), encoding="utf-8")
    (run / "trustune.sig").write_text(json.dumps(golden["signature"]), encoding="utf-8")
    (tmp_path / f"{name}.pub").write_text(golden["public_key_pem"], encoding="ascii")
    return run, golden


def _golden_key(golden: dict[str, Any]) -> SigningKey:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    seed = bytes.fromhex(golden["private_key_seed_hex"])
    return SigningKey(Ed25519PrivateKey.from_private_bytes(seed))


def test_golden_signature_v2_is_pinned_and_verifies(tmp_path: Path) -> None:
    run, golden = _golden_run(tmp_path, "signature_v2.json")
    key = _golden_key(golden)
    record = signature_record(golden["manifest"], key, version=3,
                              signed="2026-02-01T12:00:00+00:00")  # fmt: skip
    assert record == golden["signature"]  # Ed25519 is deterministic: the bytes are pinned
    result = verify_run(run, key.public_key(), min_version=3,
                        signed_after=dt.datetime(2026, 2, 1, tzinfo=dt.UTC))  # fmt: skip
    assert (result.version, result.signed, result.notice) == (
        3, dt.datetime(2026, 2, 1, 12, tzinfo=dt.UTC), None
    )  # fmt: skip


def test_golden_signature_v1_still_verifies_with_a_notice(tmp_path: Path) -> None:
    run, _ = _golden_run(tmp_path, "signature_v1.json")
    public = read_public_key(tmp_path / "signature_v1.json.pub")
    result = verify_run(run, public)
    assert result.version is None and result.signed is None
    assert result.notice is not None and "signing time and version are not signed" in result.notice
    with pytest.raises(SignatureError, match="format-1 signature, which signs no version or time"):
        verify_run(run, public, min_version=1)


@pytest.mark.parametrize(
    ("field", "value"), [("version", 9), ("signed", "2030-01-01T00:00:00+00:00")]
)
def test_the_version_and_time_are_signed(tmp_path: Path, field: str, value: Any) -> None:
    run, golden = _golden_run(tmp_path, "signature_v2.json")
    record = json.loads((run / "trustune.sig").read_text(encoding="utf-8"))
    record[field] = value  # a rolled-back copy dressed up as new
    (run / "trustune.sig").write_text(json.dumps(record), encoding="utf-8")
    with pytest.raises(SignatureError, match="does not match its manifest"):
        verify_run(run, _golden_key(golden).public_key())


def test_an_older_signed_copy_is_refused(signed_run: tuple[Path, Path], tmp_path: Path) -> None:
    run, private = signed_run
    signer, public = read_signing_key(private), _public(private)
    old_copy = tmp_path / "old-copy"
    shutil.copytree(run, old_copy)  # version 1
    assert json.loads((run / "trustune.sig").read_text())["version"] == 1
    sign_run(run, signer)  # version 2 by default
    assert verify_run(run, public, min_version=2).version == 2
    with pytest.raises(SignatureError, match=r"signed as version 1, older than the version 2"):
        verify_run(old_copy, public, min_version=2)
    with pytest.raises(SecurityError, match="cannot go back to version 1"):
        sign_run(run, signer, version=1)
    sign_run(run, signer, version=7)
    assert verify_run(run, public).version == 7
    future = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    with pytest.raises(SignatureError, match=r"was signed at .*, before the .* required"):
        verify_run(run, public, signed_after=future)


def test_verify_command_checks_the_minimum(
    signed_run: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    from trustune.cli.main import main

    run, private = signed_run
    public = f"{private}.pub"
    assert main(["verify", str(run), "--public-key", public, "--min-version", "1",
                 "--signed-after", "2020-01-01"]) == 0  # fmt: skip
    assert "version 1, signed 20" in capsys.readouterr().out
    assert main(["verify", str(run), "--public-key", public, "--min-version", "2"]) == 2
    error = capsys.readouterr().err
    assert "older than the version 2 required (--min-version)" in error
    assert error.count("\n") == 1
    assert main(["verify", str(run), "--public-key", public, "--signed-after", "soon"]) == 2
    assert "is not an ISO 8601 date" in capsys.readouterr().err
    assert main(["sign", str(run), "--signing-key", str(private), "--version", "4"]) == 0
    assert "as version 4" in capsys.readouterr().out
