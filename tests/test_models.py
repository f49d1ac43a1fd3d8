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
