"""Encrypting, opening, rekeying and decrypting a whole run (the tiny run, copied)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import pickle
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

import trustune
from trustune.artifact import hash_files
from trustune.errors import (
    ArtifactError,
    IntegrityError,
    MissingKeyError,
    SecurityError,
    WrongKeyError,
)
from trustune.security import (
    ENV_KEY,
    ENV_KEY_FILE,
    Passphrase,
    ScryptParams,
    SecretKey,
    decrypt_run,
    encrypt_run,
    generate_key,
    read_key_file,
    rekey_run,
    write_key_file,
)
from trustune.security.envelope import KeyWrap, unwrap_data_key, wrap_data_key

TEXTS = ["I was charged twice this month", "the app crashes on start", "where is my parcel"]
FAST_SCRYPT = ScryptParams.fresh(n=2**10)  # tests only: the default costs 128 MiB and ~0.5 s


def _counter_random() -> Callable[[int], bytes]:
    state = {"i": 0}

    def random(n: int) -> bytes:
        state["i"] += 1
        return hashlib.sha256(f"run-{state['i']}".encode()).digest()[:n]

    return random


@pytest.fixture
def plain_run(tmp_path: Path, tiny_run: Path) -> Path:
    run = tmp_path / "plain"
    shutil.copytree(tiny_run, run)
    return run


def _snapshot(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_encrypted_run_layout_and_manifest(plain_run: Path, tmp_path: Path) -> None:
    key = generate_key()
    sealed = encrypt_run(plain_run, key=key, output=tmp_path / "sealed")
    names = set(_snapshot(sealed))
    payloads = {n for n in _snapshot(plain_run) if n not in ("trustune.json", "metrics.json",
                                                               "report.html")}  # fmt: skip
    assert {"model/model.safetensors", "model/config.json", "model/tokenizer.json"} <= payloads
    assert names == {n + ".enc" for n in payloads} | {"trustune.json", "metrics.json",
                                                      "report.html"}  # fmt: skip
    manifest = json.loads((sealed / "trustune.json").read_text(encoding="utf-8"))
    section = manifest["encryption"]
    assert section["algorithm"] == "AES-256-GCM" and section["format_version"] == 1
    assert sorted(section["sealed_files"]) == sorted(payloads)
    assert set(section["key_wrap"]) == {"algorithm", "kek", "kek_id", "kdf", "nonce",
                                        "wrapped_key", "created"}  # fmt: skip
    assert section["key_wrap"]["kek_id"] == key.key_id
    assert manifest["files"] == {n: h for n, h in _snapshot(sealed).items() if n.endswith(".enc")}
    assert manifest["labels"] == json.loads((plain_run / "trustune.json").read_text())["labels"]
    # neither the key nor any plaintext appears in the encrypted run
    config = (plain_run / "model" / "config.json").read_bytes()
    for path in sealed.rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            assert key.reveal() not in content
            assert key.to_text().encode() not in content
            assert base64.b64encode(key.reveal()) not in content
            if path.suffix == ".enc":
                assert config[:40] not in content


def test_encrypted_run_predicts_like_the_plaintext_one_and_writes_nothing(
    plain_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = trustune.load(plain_run).predict_proba(TEXTS)
    key = generate_key()
    sealed = encrypt_run(plain_run, key=key, output=tmp_path / "sealed")
    private_tmp = tmp_path / "tmp"  # every temporary file trustune could write lands here
    private_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(private_tmp))
    monkeypatch.setenv("TMPDIR", str(private_tmp))
    monkeypatch.chdir(tmp_path)
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")}
    model = trustune.load(sealed, key=key)
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")} == before
    assert (model.predict_proba(TEXTS) == expected).all()
    assert repr(model).startswith("TextClassifier(")


def test_keys_from_a_file_path_and_the_environment(
    plain_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_file = write_key_file(tmp_path / "k.key", generate_key())
    assert (key_file.stat().st_mode & 0o777) == 0o600
    sealed = encrypt_run(plain_run, key=read_key_file(key_file), output=tmp_path / "sealed")
    trustune.load(sealed, key=str(key_file))
    monkeypatch.setenv(ENV_KEY_FILE, str(key_file))
    trustune.load(sealed)
    monkeypatch.delenv(ENV_KEY_FILE)
    monkeypatch.setenv(ENV_KEY, read_key_file(key_file).to_text())
    trustune.load(sealed)


def test_missing_wrong_key_and_wrong_passphrase_messages(plain_run: Path, tmp_path: Path) -> None:
    key = generate_key()
    sealed = encrypt_run(plain_run, key=key, output=tmp_path / "sealed")
    with pytest.raises(MissingKeyError, match=r"is encrypted; pass its key with --key-file KEY"):
        trustune.load(sealed)
    other = generate_key()
    with pytest.raises(WrongKeyError, match=f"encrypted with key id {key.key_id}, the key given "
                                            f"has id {other.key_id}") as raised:  # fmt: skip
        trustune.load(sealed, key=other)
    assert other.to_text() not in str(raised.value) and key.to_text() not in str(raised.value)
    with pytest.raises(MissingKeyError, match=r"key file .*nope.key does not exist; .*keygen"):
        trustune.load(sealed, key=tmp_path / "nope.key")
    with pytest.raises(WrongKeyError, match="was encrypted with a key file, but a passphrase"):
        trustune.load(sealed, key=Passphrase("a passphrase"))

    phrased = encrypt_run(
        plain_run, key=Passphrase("correct horse battery"), kdf=FAST_SCRYPT,
        output=tmp_path / "phrased",
    )  # fmt: skip
    trustune.load(phrased, key=Passphrase("correct horse battery"))
    with pytest.raises(WrongKeyError, match=r"wrong passphrase for .*nothing was decrypted"):
        trustune.load(phrased, key=Passphrase("incorrect horse battery"))
    with pytest.raises(WrongKeyError, match="encrypted with a passphrase, but a key file"):
        trustune.load(phrased, key=key)
    kdf = json.loads((phrased / "trustune.json").read_text())["encryption"]["key_wrap"]["kdf"]
    assert (
        kdf["name"] == "scrypt" and kdf["n"] == 2**10 and len(base64.b64decode(kdf["salt"])) == 16
    )


def test_weak_passphrase_and_double_encryption_are_refused(plain_run: Path, tmp_path: Path) -> None:
    with pytest.raises(SecurityError, match="fewer than 8 characters"):
        encrypt_run(plain_run, key=Passphrase("short"), output=tmp_path / "x")
    assert not (tmp_path / "x").exists()
    sealed = encrypt_run(plain_run, key=generate_key(), output=tmp_path / "sealed")
    with pytest.raises(SecurityError, match="already encrypted; to change its key use"):
        encrypt_run(sealed, key=generate_key())
    with pytest.raises(ArtifactError, match="already exists; choose another --output"):
        encrypt_run(plain_run, key=generate_key(), output=sealed)


def test_rotation_rewrites_only_the_manifest(plain_run: Path, tmp_path: Path) -> None:
    old, new = generate_key(), generate_key()
    sealed = encrypt_run(plain_run, key=old, output=tmp_path / "sealed")
    expected = trustune.load(sealed, key=old).predict_proba(TEXTS)
    before = _snapshot(sealed)
    wrap = rekey_run(sealed, key=old, new_key=new)
    after = _snapshot(sealed)
    assert wrap.kek_id == new.key_id
    assert {n for n in before if before[n] != after[n]} == {"trustune.json"}
    with pytest.raises(WrongKeyError, match=f"encrypted with key id {new.key_id}"):
        trustune.load(sealed, key=old)
    assert (trustune.load(sealed, key=new).predict_proba(TEXTS) == expected).all()
    rekey_run(sealed, key=new, new_key=Passphrase("a long passphrase"), kdf=FAST_SCRYPT)
    rekey_run(sealed, key=Passphrase("a long passphrase"), new_key=old)
    assert (trustune.load(sealed, key=old).predict_proba(TEXTS) == expected).all()
    with pytest.raises(SecurityError, match="the new key is the key"):
        rekey_run(sealed, key=old, new_key=old)
    with pytest.raises(WrongKeyError):
        rekey_run(sealed, key=new, new_key=generate_key())


def test_decrypt_restores_the_plaintext_run(plain_run: Path, tmp_path: Path) -> None:
    key = generate_key()
    sealed = encrypt_run(plain_run, key=key, output=tmp_path / "sealed")
    restored = decrypt_run(sealed, key=key, output=tmp_path / "restored")
    original, result = _snapshot(plain_run), _snapshot(restored)
    assert {n: h for n, h in result.items() if n != "trustune.json"} == {
        n: h for n, h in original.items() if n != "trustune.json"
    }
    manifest = json.loads((restored / "trustune.json").read_text(encoding="utf-8"))
    assert "encryption" not in manifest
    assert manifest["files"] == hash_files(restored)
    assert manifest == json.loads((plain_run / "trustune.json").read_text(encoding="utf-8"))
    # in place, both ways
    encrypt_run(restored, key=key)
    assert (restored / "model" / "model.safetensors.enc").is_file()
    assert not (restored / "model" / "model.safetensors").exists()
    decrypt_run(restored, key=key)
    assert _snapshot(restored) == result
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain", "restored", "sealed"]


def test_damage_is_detected_and_leaves_no_partial_output(plain_run: Path, tmp_path: Path) -> None:
    key = generate_key()
    sealed = encrypt_run(plain_run, key=key, output=tmp_path / "sealed")
    weights = sealed / "model" / "model.safetensors.enc"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x40
    weights.write_bytes(bytes(data))
    before = _snapshot(sealed)
    with pytest.raises(IntegrityError, match=r"model/model.safetensors: chunk \d+ of \d+ fails"):
        decrypt_run(sealed, key=key, output=tmp_path / "out")
    with pytest.raises(IntegrityError, match=r"model/model\.safetensors: chunk"):
        decrypt_run(sealed, key=key)  # in place: the run stays as it was
    with pytest.raises(IntegrityError, match=r"model/model\.safetensors: chunk"):
        trustune.load(sealed, key=key)
    assert _snapshot(sealed) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain", "sealed"]

    (sealed / "model" / "config.json.enc").unlink()
    with pytest.raises(IntegrityError, match=r"missing model/config.json.enc"):
        decrypt_run(sealed, key=key, output=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_files_swapped_within_or_between_runs_are_detected(plain_run: Path, tmp_path: Path) -> None:
    key = generate_key()
    first = encrypt_run(plain_run, key=key, output=tmp_path / "first")
    second = encrypt_run(plain_run, key=key, output=tmp_path / "second")
    shutil.copy(second / "model" / "config.json.enc", first / "model" / "config.json.enc")
    with pytest.raises(IntegrityError, match="belongs to another artifact"):
        trustune.load(first, key=key)
    config = second / "model" / "config.json.enc"
    tokenizer_config = second / "model" / "tokenizer_config.json.enc"
    a, b = config.read_bytes(), tokenizer_config.read_bytes()
    config.write_bytes(b)
    tokenizer_config.write_bytes(a)
    with pytest.raises(
        IntegrityError, match=r"model/(tokenizer_)?config\.json: chunk 1 of 1 fails"
    ):
        trustune.load(second, key=key)


def test_key_material_never_shows(tmp_path: Path) -> None:
    key = generate_key()
    for text in (repr(key), str(key), repr(Passphrase("hunter2hunter2")), str([key])):
        assert "[secret]" in text
        assert key.to_text() not in text and "hunter2" not in text
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(key)
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(Passphrase("hunter2hunter2"))
    bad = tmp_path / "bad.key"
    bad.write_text("trustune-key-v1:c2hvcnQ\n", encoding="ascii")
    with pytest.raises(SecurityError, match=r"bad.key is not a trustune key") as raised:
        read_key_file(bad)
    assert "c2hvcnQ" not in str(raised.value)
    with pytest.raises(SecurityError, match=r"\$TRUSTUNE_KEY is not a trustune key"):
        SecretKey.from_text("garbage", source="$TRUSTUNE_KEY")
    with pytest.raises(SecurityError, match="already exists; a key file is never overwritten"):
        write_key_file(bad, key)
    assert read_key_file(write_key_file(tmp_path / "k", key)) == key


def test_golden_key_wrap() -> None:
    """The wrapped-data-key record is pinned like the sealed-file bytes."""
    random = _counter_random()
    kek = SecretKey(bytes(range(32)))
    data_key = SecretKey(bytes(range(32, 64)))
    artifact = bytes(16)
    wrap = wrap_data_key(
        data_key, kek, artifact, created="2026-11-28T00:00:00+00:00", random=random
    )
    record = wrap.to_dict()
    assert record == {
        "algorithm": "AES-256-GCM",
        "kek": "key-file",
        "kek_id": kek.key_id,
        "kdf": None,
        "nonce": base64.b64encode(hashlib.sha256(b"run-1").digest()[:12]).decode(),
        "wrapped_key": "HfLcinCSxIPsD0nBBbOy8N1nI0ltrrbmgoH9Texidu2NxlG8LYMW55Ahae71MkcF",
        "created": "2026-11-28T00:00:00+00:00",
    }
    assert unwrap_data_key(KeyWrap.from_dict(record), kek, artifact, where="x") == data_key
    with pytest.raises(IntegrityError, match="does not authenticate"):
        unwrap_data_key(KeyWrap.from_dict(record), kek, bytes([1]) * 16, where="x")


def test_environment_passphrase(monkeypatch: pytest.MonkeyPatch) -> None:
    from trustune.security import key_from_env

    monkeypatch.delenv(ENV_KEY_FILE, raising=False)
    monkeypatch.delenv(ENV_KEY, raising=False)
    monkeypatch.setenv("TRUSTUNE_PASSPHRASE", "from the environment")
    assert isinstance(key_from_env(), Passphrase)
    monkeypatch.setenv(ENV_KEY_FILE, os.devnull)
    with pytest.raises(SecurityError, match="is not a trustune key"):
        key_from_env()


def test_crafted_scrypt_parameters_are_refused_before_deriving() -> None:
    """A manifest cannot make a reader allocate gigabytes (128 * n * r bytes) or spin."""
    for n, r, p in [(2**22, 32, 16), (2**21, 8, 1), (2**17, 8, 64), (3, 8, 1)]:
        with pytest.raises(SecurityError, match=r"scrypt parameters .* are out of range"):
            ScryptParams(salt=bytes(16), n=n, r=r, p=p).check()
    record = {"algorithm": "AES-256-GCM", "kek": "passphrase", "kek_id": "0" * 16,
              "kdf": {"name": "scrypt", "salt": base64.b64encode(bytes(16)).decode(),
                      "n": 2**22, "r": 32, "p": 16},
              "nonce": base64.b64encode(bytes(12)).decode(),
              "wrapped_key": base64.b64encode(bytes(48)).decode()}  # fmt: skip
    with pytest.raises(SecurityError, match="out of range"):
        KeyWrap.from_dict(record)
