from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import pytest

from trustune.errors import ModelError, UnsafeModelError
from trustune.models import load_classifier, resolve_model


def test_minilm_resolves_to_bundled_folder() -> None:
    resolved = resolve_model("minilm")
    assert resolved.is_local
    assert (Path(resolved.location) / "model.safetensors").is_file()


def test_hub_id_is_kept_for_the_hub() -> None:
    resolved = resolve_model("sentence-transformers/all-MiniLM-L6-v2")
    assert not resolved.is_local
    assert resolved.location == "sentence-transformers/all-MiniLM-L6-v2"


def test_not_a_checkpoint_folder(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="is not a Hugging Face checkpoint folder"):
        resolve_model(str(tmp_path))
    with pytest.raises(ModelError, match="no such folder"):
        resolve_model(str(tmp_path / "missing" / "deeper"))


def _copy_config(tiny_model: Path, folder: Path) -> None:
    folder.mkdir()
    shutil.copy(tiny_model / "config.json", folder / "config.json")


class _Sentinel:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (Path.touch, (Path(self.path),))


def test_pickle_weights_refused_before_unpickling(tmp_path: Path, tiny_model: Path) -> None:
    folder = tmp_path / "pickled"
    _copy_config(tiny_model, folder)
    sentinel = tmp_path / "sentinel"
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps(_Sentinel(str(sentinel))))
    with pytest.raises(
        UnsafeModelError,
        match=r"pickle weights only \(pytorch_model.bin\).*safe_serialization=True",
    ):
        load_classifier(resolve_model(str(folder)), num_labels=2)
    assert not sentinel.exists()


def test_remote_code_refused(tmp_path: Path, tiny_model: Path) -> None:
    folder = tmp_path / "remote"
    shutil.copytree(tiny_model, folder)
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    config["auto_map"] = {"AutoModelForSequenceClassification": "evil.Model"}
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    with pytest.raises(UnsafeModelError, match="asks for remote code"):
        load_classifier(resolve_model(str(folder)), num_labels=2)


def _strip(weights: Path, part: str) -> None:
    """Rewrite a safetensors file without the tensors whose name contains ``part``."""
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(weights))
    kept = {k: v for k, v in tensors.items() if part not in k}
    assert len(kept) < len(tensors)
    save_file(kept, str(weights), metadata={"format": "pt"})


def test_a_trained_run_missing_tensors_is_refused(tmp_path: Path, tiny_run: Path) -> None:
    import trustune
    from trustune.security import encrypt_run, generate_key

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    _strip(run / "model" / "model.safetensors", "encoder.layer.1.")
    message = r"lack 16 of the model's \d+ tensors \(bert\.encoder\.layer\.1\..*, \+13 more\)"
    with pytest.raises(ModelError, match=message):
        trustune.load(run)
    key = generate_key()
    sealed = encrypt_run(run, key=key, output=tmp_path / "sealed")
    with pytest.raises(ModelError, match=message):  # built in memory: the same check
        trustune.load(sealed, key=key)


def test_a_base_checkpoint_may_lack_its_head_only(tmp_path: Path, tiny_model: Path) -> None:
    base = tmp_path / "base"
    shutil.copytree(tiny_model, base)
    _strip(base / "model.safetensors", "classifier.")
    _strip(base / "model.safetensors", "bert.pooler.")
    model = load_classifier(resolve_model(str(base)), id2label={0: "a", 1: "b", 2: "c"})
    assert model.config.num_labels == 3  # a new head, initialised
    with pytest.raises(ModelError, match=r"lack 4 of the model's \d+ tensors \(bert.pooler"):
        load_classifier(resolve_model(str(base)))  # as a trained model it is incomplete
    _strip(base / "model.safetensors", "encoder.layer.0.attention.self.query.")
    with pytest.raises(
        ModelError,
        match=r"lack 2 of the model's \d+ tensors of the base model outside the classification "
        r"head \(bert\.encoder\.layer\.0\.attention\.self\.query\.bias, ",
    ):
        load_classifier(resolve_model(str(base)), id2label={0: "a", 1: "b"})


@pytest.mark.parametrize(
    "content",
    [b'{"version": "1.0", "model": 3}', b"{not json", b"\xff\xfe\x00binary", b""],
    ids=["not-a-tokenizer", "bad-json", "binary", "empty"],
)
def test_a_malformed_tokenizer_is_one_clear_error(
    tmp_path: Path, tiny_model: Path, content: bytes
) -> None:
    from trustune.models import load_tokenizer

    folder = tmp_path / "broken"
    shutil.copytree(tiny_model, folder)
    (folder / "tokenizer.json").write_bytes(content)
    with pytest.raises(ModelError, match=r"broken/tokenizer\.json is malformed \(.+\); restore"):
        load_tokenizer(resolve_model(str(folder)))


@pytest.mark.parametrize(("name", "limit"), [("tokenizer.json", 64), ("tokenizer_config.json", 4),
                                             ("vocab.txt", 32)])  # fmt: skip
def test_oversized_tokenizer_files_are_refused_before_parsing(
    tmp_path: Path, tiny_model: Path, name: str, limit: int
) -> None:
    from trustune.models import load_tokenizer

    folder = tmp_path / "huge"
    shutil.copytree(tiny_model, folder)
    with open(folder / name, "ab") as f:
        f.truncate(limit * 1024 * 1024 + 1)  # sparse: no disk, and nothing parses it
    with pytest.raises(ModelError, match=rf"{name} is {limit}\.0 MiB, more than the {limit} MiB"):
        load_tokenizer(resolve_model(str(folder)))
