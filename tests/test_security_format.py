"""The sealed-file format: golden bytes, and every kind of tampering is detected."""

from __future__ import annotations

import hashlib
import io
import os
import struct
import threading
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest

from trustune.errors import IntegrityError, SecurityError
from trustune.security.format import (
    CHUNK_OVERHEAD,
    HEADER_BYTES,
    MAGIC,
    SealedHeader,
    open_stream,
    plaintext_size,
    seal_stream,
)
from trustune.security.keys import SecretKey
from trustune.security.opener import read_sealed

GOLDEN = Path(__file__).parent / "golden" / "sealed_v1.hex"
KEY = SecretKey(bytes(range(32)))
ARTIFACT = bytes(range(100, 116))
PLAINTEXT = b"trustune golden plaintext: 40 bytes long"
NAME = "model/model.safetensors"


def counter_random() -> Callable[[int], bytes]:
    """Deterministic 'randomness' for reproducible bytes (tests only)."""
    state = {"i": 0}

    def random(n: int) -> bytes:
        state["i"] += 1
        return hashlib.sha256(f"golden-{state['i']}".encode()).digest()[:n]

    return random


def seal(
    data: bytes, *, chunk_size: int = 16, name: str = NAME, artifact: bytes = ARTIFACT,
    key: SecretKey = KEY, random: Callable[[int], bytes] | None = None,
) -> bytes:  # fmt: skip
    out = io.BytesIO()
    kwargs = {"random": random} if random else {}
    seal_stream(
        io.BytesIO(data), out, data_key=key, artifact_id=artifact, name=name,
        chunk_size=chunk_size, **kwargs,
    )  # fmt: skip
    return out.getvalue()


def unseal(sealed: bytes, *, name: str = NAME, artifact: bytes = ARTIFACT) -> bytes:
    out = io.BytesIO()
    open_stream(
        io.BytesIO(sealed), out, size=len(sealed), data_key=KEY, artifact_id=artifact, name=name
    )
    return out.getvalue()


def test_golden_bytes_pin_the_format() -> None:
    sealed = seal(PLAINTEXT, random=counter_random())
    # header: magic, version 1, algorithm 1 (AES-256-GCM), reserved, chunk size 16, artifact id
    assert sealed[:HEADER_BYTES] == MAGIC + b"\x00\x01\x01\x00" + struct.pack(">I", 16) + ARTIFACT
    # 40 bytes in chunks of 16: 16 + 16 + 8, each with a 12-byte nonce and a 16-byte tag
    assert len(sealed) == HEADER_BYTES + 3 * CHUNK_OVERHEAD + 40
    assert sealed[HEADER_BYTES : HEADER_BYTES + 12] == hashlib.sha256(b"golden-1").digest()[:12]
    golden = bytes.fromhex(GOLDEN.read_text(encoding="ascii").strip())
    assert sealed == golden
    assert unseal(golden) == PLAINTEXT  # files written by earlier versions stay readable


def test_round_trip_sizes() -> None:
    for size in (0, 1, 15, 16, 17, 32, 100, 1000):
        data = (bytes(range(256)) * 4)[:size]
        sealed = seal(data)
        assert unseal(sealed) == data
        assert plaintext_size(len(sealed), 16) == size


def test_same_file_twice_gives_different_ciphertexts() -> None:
    first, second = seal(PLAINTEXT), seal(PLAINTEXT)
    assert first[:HEADER_BYTES] == second[:HEADER_BYTES]
    assert first[HEADER_BYTES:] != second[HEADER_BYTES:]
    nonces = {first[HEADER_BYTES + i * 44 :][:12] for i in range(2)}
    assert len(nonces) == 2  # a fresh nonce per chunk


def _chunk_span(index: int, chunk_size: int = 16) -> int:
    return HEADER_BYTES + index * (chunk_size + CHUNK_OVERHEAD)


@pytest.mark.parametrize(
    ("region", "offset"),
    [
        ("magic", 0),
        ("version", 9),
        ("chunk size", 15),
        ("artifact id", 20),
        ("nonce", _chunk_span(1) + 3),
        ("ciphertext", _chunk_span(1) + 12 + 5),
        ("tag", _chunk_span(1) + 12 + 16 + 2),
        ("last chunk tag", _chunk_span(2) + 12 + 8 + 15),
    ],
)
def test_a_flipped_byte_in_every_region_is_detected(region: str, offset: int) -> None:
    sealed = bytearray(seal(PLAINTEXT))
    sealed[offset] ^= 0x01
    with pytest.raises(SecurityError) as raised:
        unseal(bytes(sealed))
    assert NAME in str(raised.value)


def _chunks(sealed: bytes, chunk_size: int = 16) -> tuple[bytes, list[bytes]]:
    body = sealed[HEADER_BYTES:]
    full = chunk_size + CHUNK_OVERHEAD
    return sealed[:HEADER_BYTES], [body[i : i + full] for i in range(0, len(body), full)]


def test_truncation_is_detected() -> None:
    sealed = seal(PLAINTEXT)
    header, chunks = _chunks(sealed)
    with pytest.raises(IntegrityError, match="chunk 2 of 2 fails authentication"):
        unseal(header + chunks[0] + chunks[1])  # the final chunk dropped at a boundary
    with pytest.raises(IntegrityError, match="truncated"):
        unseal(sealed[:-30])  # cut inside the last chunk: shorter than nonce + tag
    with pytest.raises(IntegrityError, match="fails authentication"):
        unseal(sealed[:-1])
    with pytest.raises(IntegrityError, match="not a trustune sealed file"):
        unseal(sealed[:20])
    with pytest.raises(IntegrityError):
        unseal(header)  # no chunk at all, not even the empty final one


def test_reordered_duplicated_and_appended_chunks_are_detected() -> None:
    header, chunks = _chunks(seal(PLAINTEXT))
    with pytest.raises(IntegrityError, match="chunk 1 of 3"):
        unseal(header + chunks[1] + chunks[0] + chunks[2])
    with pytest.raises(IntegrityError, match="chunk 2 of 3"):
        unseal(header + chunks[0] + chunks[0] + chunks[2])
    with pytest.raises(IntegrityError):
        unseal(header + chunks[0] + chunks[1] + chunks[2] + chunks[2])


def test_chunks_swapped_between_files_or_artifacts_are_detected() -> None:
    header, chunks = _chunks(seal(PLAINTEXT))
    _, other_file = _chunks(seal(PLAINTEXT, name="model/config.json"))
    with pytest.raises(IntegrityError, match="chunk 2 of 3"):
        unseal(header + chunks[0] + other_file[1] + chunks[2])
    with pytest.raises(IntegrityError):
        unseal(seal(PLAINTEXT), name="model/config.json")  # a whole file renamed
    other_artifact = bytes(16)
    _, foreign = _chunks(seal(PLAINTEXT, artifact=other_artifact))
    with pytest.raises(IntegrityError, match="chunk 1 of 3"):
        unseal(header + foreign[0] + chunks[1] + chunks[2])
    with pytest.raises(IntegrityError, match="belongs to another artifact"):
        unseal(seal(PLAINTEXT, artifact=other_artifact))


def test_a_wrong_data_key_fails_every_chunk() -> None:
    sealed = seal(PLAINTEXT, key=SecretKey(bytes(32)))
    with pytest.raises(IntegrityError, match="chunk 1 of 3 fails authentication"):
        unseal(sealed)


def test_header_checks() -> None:
    with pytest.raises(SecurityError, match="format version 2"):
        SealedHeader.parse(MAGIC + b"\x00\x02\x01\x00" + b"\x00" * 20, name="f")
    with pytest.raises(IntegrityError, match="chunk size 0"):
        SealedHeader.parse(MAGIC + b"\x00\x01\x01\x00" + b"\x00" * 20, name="f")
    with pytest.raises(SecurityError, match="chunk size must be"):
        SealedHeader(artifact_id=ARTIFACT, chunk_size=0).pack()


def test_read_sealed_in_memory_matches_and_detects_damage(tmp_path: Path) -> None:
    data = bytes(range(256)) * 300  # 76,800 bytes: 19 chunks of 4 KiB
    path = tmp_path / "weights.enc"
    path.write_bytes(seal(data, chunk_size=4096))
    for workers in (1, 4):
        opened = read_sealed(path, data_key=KEY, artifact_id=ARTIFACT, name=NAME, workers=workers)
        assert opened.tobytes() == data
    damaged = bytearray(path.read_bytes())
    damaged[_chunk_span(7, 4096) + 100] ^= 0xFF
    path.write_bytes(bytes(damaged))
    with pytest.raises(IntegrityError, match="chunk 8 of 19"):
        read_sealed(path, data_key=KEY, artifact_id=ARTIFACT, name=NAME, workers=4)


class _Zeros(io.RawIOBase):
    """A stream of ``size`` zero bytes that is never held in memory."""

    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        n = min(len(buffer), self.left)
        buffer[:n] = bytes(n)
        self.left -= n
        return n


class _Sink(io.RawIOBase):
    """Counts what is written and checks it is zeros; keeps nothing."""

    def __init__(self) -> None:
        self.size = 0
        self.all_zero = True

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.size += len(data)
        self.all_zero = self.all_zero and bytes(data).count(0) == len(data)
        return len(data)


@pytest.mark.slow
def test_streams_over_2_gib_with_bounded_memory() -> None:
    """Seal 2 GiB + a bit into a pipe while another thread opens it: nothing is kept."""
    size = (2 << 30) + 12345
    read_fd, write_fd = os.pipe()
    errors: list[BaseException] = []

    def producer() -> None:
        try:
            with open(write_fd, "wb") as f:
                seal_stream(_Zeros(size), f, data_key=KEY, artifact_id=ARTIFACT, name="big")
        except BaseException as e:  # reported by the test thread
            errors.append(e)

    sealed_size = HEADER_BYTES + size + -(-size // (1 << 20)) * CHUNK_OVERHEAD
    tracemalloc.start()
    thread = threading.Thread(target=producer)
    thread.start()
    sink = _Sink()
    with open(read_fd, "rb") as f:
        total = open_stream(
            f, sink, size=sealed_size, data_key=KEY, artifact_id=ARTIFACT, name="big"
        )
    thread.join()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert not errors
    assert total == sink.size == size
    assert sink.all_zero
    assert peak < 16 << 20  # a few 1 MiB chunks, never the file


def test_public_surface() -> None:
    import importlib

    for module in ("trustune.security", "trustune.security.keys", "trustune.security.format",
                   "trustune.security.envelope", "trustune.security.artifact", "trustune.security.opener",
                   "trustune.security.signing", "trustune.security.loading",
                   "trustune.models.memory", "trustune.models.safetensors_header"):  # fmt: skip
        mod = importlib.import_module(module)
        assert mod.__all__, module
        for name in mod.__all__:
            assert hasattr(mod, name), f"{module}.{name}"


def test_opener_threads_join_late_and_errors_do_not_hang(tmp_path: Path) -> None:
    from trustune.security.opener import SealedFileOpener

    data = bytes(range(256)) * 64  # 16 KiB: 16 chunks of 1 KiB
    path = tmp_path / "w.enc"
    path.write_bytes(seal(data, chunk_size=1024))
    opener = SealedFileOpener(path, data_key=KEY, artifact_id=ARTIFACT, name=NAME)
    assert opener.finish().tobytes() == data
    opener.work()  # a helper that starts after the end does nothing
    damaged = bytearray(path.read_bytes())
    damaged[-5] ^= 1
    path.write_bytes(bytes(damaged))
    opener = SealedFileOpener(path, data_key=KEY, artifact_id=ARTIFACT, name=NAME)
    helper = threading.Thread(target=opener.work)
    helper.start()
    with pytest.raises(IntegrityError, match="chunk 16 of 16"):
        opener.finish()
    helper.join(timeout=10)
    assert not helper.is_alive()
