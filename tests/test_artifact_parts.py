"""A run's parts are checked against each other when it is loaded (and before training)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import trustune
from trustune.errors import ArtifactError


@pytest.fixture
def run(tmp_path: Path, tiny_run: Path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(tiny_run, copy)
    return copy


def _set(*path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(manifest: dict[str, Any]) -> None:
        node = manifest
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return change


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m["labels"].append("refunds"),
         r"the manifest lists 5 labels but the model has 4 outputs \(num_labels in config.json\)"),
        (lambda m: m["labels"].reverse(),
         r"labels \['technical', .*\] are not the model's \(id2label in config.json: \['account'"),
        (_set("labels", value="account"), r"the manifest key 'labels' is 'account', not a list"),
        (_set("labels", value=["account"]), r"labels must be a list of at least two strings"),
        (_set("labels", value=["a", "a", "b", "c"]), r"lists a label twice"),
        (_set("config", "data", "max_length", value="128"),
         r"max_length must be an integer of at least 2, not '128'"),
        (_set("config", "data", "max_length", value=True), r"max_length must be an integer"),
        (_set("config", "data", "max_length", value=4096),
         r"max_length 4096 is longer than the model's 128 position embeddings"),
    ],
)  # fmt: skip
def test_a_manifest_that_does_not_fit_the_model_is_refused(
    run: Path, change: Callable[[dict[str, Any]], None], message: str
) -> None:
    path = run / "trustune.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    change(manifest)
    path.write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(ArtifactError, match=message) as raised:
        trustune.load(run)
    assert str(run) in str(raised.value) and "\n" not in str(raised.value)


def test_a_tokenizer_larger_than_the_embeddings_is_refused(run: Path) -> None:
    from tokenizers import AddedToken, Tokenizer

    path = run / "model" / "tokenizer.json"
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.add_tokens([AddedToken("refundz"), AddedToken("chargebackz")])
    tokenizer.save(str(path))
    with pytest.raises(
        ArtifactError, match=r"the tokenizer has 30524 tokens but the model's embeddings hold 30522"
    ):
        trustune.load(run)


def test_training_refuses_a_max_length_beyond_the_positions(
    tmp_path: Path, tiny_model: Path, demo_files: tuple[Path, Path]
) -> None:
    with pytest.raises(ArtifactError, match=r"max_length 512 is longer than the model's 128"):
        trustune.finetune(
            demo_files[0], model=str(tiny_model), output=tmp_path / "r", max_length=512,
            epochs=1, measure_latency=False,
        )  # fmt: skip
    assert not (tmp_path / "r" / "model").exists()
