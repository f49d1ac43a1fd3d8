"""Safe loading: safetensors headers are checked first, pickles never reach a parser."""

from __future__ import annotations

import contextlib
import json
import pickle
import shutil
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import save

from trustune.errors import ModelError, UnsafeModelError
from trustune.models import (
    load_classifier,
    load_classifier_from_files,
    load_tokenizer,
    resolve_model,
)
from trustune.models.memory import load_tokenizer_from_files, state_dict_from_buffer
from trustune.models.safetensors_header import parse_header, read_header


class _Sentinel:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[Path]]:
        return (Path.touch, (Path(self.path),))


class MemoryFiles:
    """A model folder held in a dict (what an encrypted run hands to models/)."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.source = "memory"

    def names(self) -> list[str]:
        return list(self.files)

    def read(self, name: str) -> bytes:
        return self.files[name]


def _folder_files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def _file(header: dict[str, Any], data: bytes = b"") -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x01\x02", "too short"),
        (struct.pack("<Q", 10_000) + b"{}", "header length 10000 is larger than the file"),
        (struct.pack("<Q", 4) + b"nope", "the header is not JSON"),
        (struct.pack("<Q", 2) + b"[]", "not a JSON object"),
        (_file({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 4),
         "outside the data"),
        (_file({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, b"\0" * 12),
         "overlaps"),
        (_file({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, b"\0" * 8),
         "needs 12 bytes, not 8"),
        (_file({"a": {"dtype": "X9", "shape": [1], "data_offsets": [0, 1]}}, b"\0"),
         "unknown dtype 'X9'"),
        (_file({"a": {"dtype": "U8", "shape": [-1], "data_offsets": [0, 1]}}, b"\0"),
         "bad shape"),
        (_file({"a": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}}, b"\0\0"),
         "belong to no tensor"),
        (_file({"__metadata__": {"k": 1}}), "__metadata__ must map strings"),
    ],
)  # fmt: skip
def test_malformed_safetensors_give_a_clear_error(content: bytes, message: str) -> None:
    with pytest.raises(ModelError, match="is not a valid safetensors file") as raised:
        state_dict_from_buffer(content, name="w.safetensors")
    assert message in str(raised.value)


def test_valid_header_round_trips() -> None:
    tensors = {"b": torch.arange(6, dtype=torch.float32).reshape(2, 3), "a": torch.tensor(3)}
    data = save(tensors)
    header = parse_header(data, len(data), name="x")
    assert {t.name for t in header.tensors} == {"a", "b"}
    assert header.data_start % 8 == 0  # safetensors pads the header to 8 bytes
    loaded = state_dict_from_buffer(data, name="x")
    assert set(loaded) == {"a", "b"}
    assert torch.equal(loaded["b"], tensors["b"]) and torch.equal(loaded["a"], tensors["a"])


def test_tensors_share_the_decrypted_buffer() -> None:
    buffer = np.frombuffer(save({"w": torch.ones(4, 4)}), dtype=np.uint8).copy()
    loaded = state_dict_from_buffer(buffer, name="x")
    start = buffer.ctypes.data
    assert start <= loaded["w"].data_ptr() < start + len(buffer)  # no copy of the weights


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_never_crash_the_parser(data: bytes) -> None:
    with contextlib.suppress(ModelError):
        state_dict_from_buffer(data, name="fuzz")


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 200), st.integers(0, 200), st.sampled_from(["F32", "U8", "BF16", "F4"]))
def test_random_offsets_never_crash_the_parser(begin: int, end: int, dtype: str) -> None:
    data = _file({"t": {"dtype": dtype, "shape": [4], "data_offsets": [begin, end]}}, b"\0" * 64)
    with contextlib.suppress(ModelError):
        state_dict_from_buffer(data, name="fuzz")


def test_pickle_renamed_to_safetensors_is_refused_unopened(
    tmp_path: Path, tiny_model: Path
) -> None:
    sentinel = tmp_path / "sentinel"
    payload = pickle.dumps(_Sentinel(str(sentinel)))
    folder = tmp_path / "renamed"
    folder.mkdir()
    shutil.copy(tiny_model / "config.json", folder / "config.json")
    (folder / "model.safetensors").write_bytes(payload)
    with pytest.raises(UnsafeModelError, match="is a pickle file, not safetensors"):
        load_classifier(resolve_model(str(folder)), num_labels=2)
    with pytest.raises(UnsafeModelError, match="safe_serialization=True"):
        read_header(folder / "model.safetensors")
    files = MemoryFiles({"config.json": (folder / "config.json").read_bytes(),
                         "model.safetensors": payload})  # fmt: skip
    with pytest.raises(UnsafeModelError, match="is a pickle file"):
        load_classifier_from_files(files)
    assert not sentinel.exists()


def test_torch_zip_renamed_to_safetensors_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    torch.save({"w": torch.ones(2)}, path)  # a zip holding a pickle
    with pytest.raises(UnsafeModelError, match="zip archive"):
        read_header(path)


@pytest.mark.parametrize("suffix", [".bin", ".pt", ".pth", ".ckpt", ".pkl"])
def test_pickle_weights_in_memory_are_refused(
    tmp_path: Path, tiny_model: Path, suffix: str
) -> None:
    sentinel = tmp_path / "sentinel"
    files = MemoryFiles({"config.json": (tiny_model / "config.json").read_bytes(),
                         f"weights{suffix}": pickle.dumps(_Sentinel(str(sentinel)))})  # fmt: skip
    with pytest.raises(UnsafeModelError, match=rf"pickle weights only \(weights\{suffix}\)"):
        load_classifier_from_files(files)
    assert not sentinel.exists()


def test_remote_code_refused_in_memory(tiny_model: Path) -> None:
    files = _folder_files(tiny_model)
    config = json.loads(files["config.json"])
    config["auto_map"] = {"AutoModelForSequenceClassification": "evil.Model"}
    files["config.json"] = json.dumps(config).encode()
    with pytest.raises(UnsafeModelError, match="asks for remote code"):
        load_classifier_from_files(MemoryFiles(files))
    tokenizer_files = _folder_files(tiny_model)
    settings_ = json.loads(tokenizer_files.get("tokenizer_config.json", b"{}"))
    settings_["auto_map"] = {"AutoTokenizer": ["evil.Tokenizer", None]}
    tokenizer_files["tokenizer_config.json"] = json.dumps(settings_).encode()
    with pytest.raises(UnsafeModelError, match="remote code"):
        load_tokenizer_from_files(MemoryFiles(tokenizer_files))


def test_remote_tokenizer_code_refused_in_a_folder(tmp_path: Path, tiny_model: Path) -> None:
    folder = tmp_path / "remote-tokenizer"
    shutil.copytree(tiny_model, folder)
    path = folder / "tokenizer_config.json"
    settings_ = json.loads(path.read_text(encoding="utf-8"))
    settings_["auto_map"] = {"AutoTokenizer": ["evil.Tokenizer", None]}
    path.write_text(json.dumps(settings_), encoding="utf-8")
    (folder / "evil.py").write_text(f"open({str(tmp_path / 'ran')!r}, 'w')\n", encoding="utf-8")
    resolved = resolve_model(str(folder))
    with pytest.raises(UnsafeModelError, match=r"auto_map in tokenizer_config.json"):
        load_tokenizer(resolved)
    with pytest.raises(UnsafeModelError, match=r"auto_map in tokenizer_config.json"):
        load_classifier(resolved, num_labels=2)
    assert not (tmp_path / "ran").exists()


def test_in_memory_model_equals_the_folder_model(tiny_model: Path) -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from_folder = AutoModelForSequenceClassification.from_pretrained(tiny_model).eval()
    from_memory = load_classifier_from_files(MemoryFiles(_folder_files(tiny_model))).eval()
    ids = torch.randint(0, 1000, (2, 12))
    with torch.inference_mode():
        assert torch.equal(from_folder(ids).logits, from_memory(ids).logits)
    texts = ["Refund my card, please!", "ÜBER naïve café 日本語 " * 20]
    tokenizer = load_tokenizer_from_files(MemoryFiles(_folder_files(tiny_model)))
    reference = AutoTokenizer.from_pretrained(tiny_model)
    assert tokenizer(texts)["input_ids"] == reference(texts)["input_ids"]
    assert tokenizer.pad_token_id == reference.pad_token_id


class SizedFiles(MemoryFiles):
    """A reader that knows sizes before reading (as an encrypted run does) and logs reads."""

    def __init__(self, files: dict[str, bytes], sizes: dict[str, int]) -> None:
        super().__init__(files)
        self.sizes, self.reads = sizes, []

    def size(self, name: str) -> int:
        return self.sizes.get(name, len(self.files[name]))

    def read(self, name: str) -> bytes:
        self.reads.append(name)
        return super().read(name)


def test_oversized_tokenizer_in_memory_is_refused_unread(tiny_model: Path) -> None:
    files = SizedFiles(_folder_files(tiny_model), {"tokenizer.json": 200 * 1024 * 1024})
    with pytest.raises(ModelError, match=r"memory/tokenizer\.json is 200\.0 MiB, more than the 64"):
        load_tokenizer_from_files(files)
    assert "tokenizer.json" not in files.reads  # nothing was decrypted or parsed


def test_malformed_tokenizer_in_memory_names_the_file(tiny_model: Path) -> None:
    files = _folder_files(tiny_model)
    files["tokenizer.json"] = b'{"version": "1.0", "model": 3}'
    with pytest.raises(ModelError, match=r"memory/tokenizer\.json is malformed \(.+\); restore it"):
        load_tokenizer_from_files(MemoryFiles(files))
