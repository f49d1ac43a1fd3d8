"""Explanations of every task: text pairs (both texts scored) and regressions (the score explained)."""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import trustune
from trustune.errors import ConfigError, DataError
from trustune.explain import ExplainableModel, Explanation
from trustune.explain.batch import TokenBatch
from trustune.explain.render import render_page, terminal_text
from trustune.explain.words import tokenize_words

ENV = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}
FIRST, SECOND = "cat dog man plays", "a red car drives fast"
_WORDS = ["cat", "dog", "man", "woman", "plays", "guitar", "runs", "red", "blue", "car"]


@pytest.fixture(scope="module")
def pair_classification_run(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Path:
    """A tiny text-pair classification run: do the two sentences share most of their words?"""
    rng = random.Random(5)
    lines = ["sentence1\tsentence2\tlabel"]
    for _ in range(120):
        a = [rng.choice(_WORDS) for _ in range(5)]
        b = [w if rng.random() < 0.5 else rng.choice(_WORDS) for w in a]
        same = sum(x == y for x, y in zip(a, b, strict=True))
        lines.append(f"{' '.join(a)}\t{' '.join(b)}\t{'similar' if same >= 3 else 'different'}")
    data = tmp_path_factory.mktemp("pair-classes") / "train.tsv"
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    output = tmp_path_factory.mktemp("runs") / "pair-classes"
    trustune.finetune(
        data, model=str(tiny_model), output=output, epochs=1, batch_size=16, lr=1e-3,
        measure_latency=False, progress=False,
    )  # fmt: skip
    return output


@pytest.fixture(scope="module")
def pair_regression_run(
    tmp_path_factory: pytest.TempPathFactory, tiny_model: Path, pair_files: tuple[Path, Path]
) -> Path:
    """A tiny text-pair regression run, trained hard enough that its score depends on the words."""
    output = tmp_path_factory.mktemp("runs") / "pair-scores"
    trustune.finetune(
        pair_files[0], validation=pair_files[1], model=str(tiny_model), output=output, epochs=3,
        batch_size=16, lr=5e-3, measure_latency=False, progress=False,
    )  # fmt: skip
    return output


def _check_words(e: Explanation) -> None:
    """Words of both texts, in order, each span in its own text."""
    assert e.text == FIRST and e.text_pair == SECOND
    assert e.words == (*FIRST.split(), *SECOND.split())
    assert e.segments == (0,) * len(FIRST.split()) + (1,) * len(SECOND.split())
    for word, (start, end), segment in zip(e.words, e.spans, e.segments, strict=True):
        assert e.text_of(segment)[start:end] == word
    assert len(e.scores) == len(e.words) and all(math.isfinite(s) for s in e.scores)


def test_pair_regression_explains_its_score_over_both_texts(pair_regression_run: Path) -> None:
    regressor = trustune.load(pair_regression_run)
    [e] = regressor.explain([FIRST], [SECOND], n_steps=64, precision="fp32")
    _check_words(e)
    assert e.target == "score" and e.predicted == "score"
    predicted = regressor.predict([FIRST], [SECOND])[0].value
    # token types reach the model: the explained output is the prediction of the pair
    assert e.probabilities["score"] == pytest.approx(predicted, abs=1e-4)
    # completeness, for the score: sum(scores) = f(pair) - f(baseline) + delta, both computed
    # here with the pair's token types
    model = ExplainableModel.from_classifier(regressor)
    [text] = tokenize_words(model.tokenizer, [FIRST], max_length=model.max_length, pairs=[SECOND])
    assert text.token_type_ids is not None and set(text.token_type_ids) == {0, 1}
    batch = TokenBatch.build([text], [0], pad_id=model.pad_id)
    with torch.inference_mode():
        output = float(
            model.probabilities(batch.input_ids, batch.attention_mask, batch.types)[0, 0]
        )
        base = float(
            model.probabilities(batch.baseline_ids, batch.attention_mask, batch.types)[0, 0]
        )
    assert e.delta is not None and abs(output - base) > 1e-5
    # float32 outputs near 3 carry ~3e-7 of rounding; the change explained is far larger
    assert sum(e.scores) == pytest.approx(output - base + e.delta, abs=1e-6)
    assert e.explained_change == pytest.approx(output - base, abs=1e-6)
    assert abs(e.delta) <= 0.05 * abs(output - base)
    assert e.completeness_warning is None
    data = e.to_dict()
    assert data["text_pair"] == SECOND and data["segments"] == list(e.segments)
    again = Explanation.from_dict(data)
    assert (again.text_pair, again.segments, again.spans) == (SECOND, e.segments, e.spans)


def test_regression_refuses_a_target_and_perturbation_methods_explain_the_score(
    pair_regression_run: Path,
) -> None:
    regressor = trustune.load(pair_regression_run)
    with pytest.raises(ConfigError, match=r"a regression explains its predicted score.*drop"):
        regressor.explain(FIRST, SECOND, target="score")
    model = ExplainableModel.from_classifier(regressor)
    [text] = tokenize_words(model.tokenizer, [FIRST], max_length=model.max_length, pairs=[SECOND])
    batch = TokenBatch.build([text], [0], pad_id=model.pad_id)
    with torch.inference_mode():
        output = float(
            model.probabilities(batch.input_ids, batch.attention_mask, batch.types)[0, 0]
        )
        # occlusion of the first word of the second text: its pieces replaced by [PAD]
        ids = batch.input_ids.clone()
        ids[0, batch.word_mask[0] == len(FIRST.split())] = model.pad_id
        without = float(model.probabilities(ids, batch.attention_mask, batch.types)[0, 0])
    [occluded] = regressor.explain(FIRST, SECOND, method="occlusion")
    _check_words(occluded)
    assert occluded.scores[len(FIRST.split())] == pytest.approx(output - without, abs=1e-5)
    [shap] = regressor.explain(FIRST, SECOND, method="kernel-shap", n_samples=64)
    _check_words(shap)
    assert any(s != 0 for s in shap.scores)


def test_pair_classification_explains_both_texts(pair_classification_run: Path) -> None:
    classifier = trustune.load(pair_classification_run)
    assert classifier.pairs
    [e] = classifier.explain(FIRST, SECOND, n_steps=32)
    _check_words(e)
    assert set(e.probabilities) == {"different", "similar"}
    assert sum(e.probabilities.values()) == pytest.approx(1.0, abs=1e-4)
    want = classifier.predict([FIRST], [SECOND])[0]
    assert e.predicted == want.label
    assert e.probabilities[str(want.label)] == pytest.approx(want.score, abs=1e-4)
    [other] = classifier.explain(FIRST, SECOND, target="similar", method="gradient-x-input")
    assert other.target == "similar"
    _check_words(other)
    shown = terminal_text(e, color_system=None).plain
    assert shown == f"first text: {FIRST}\nsecond text: {SECOND}"
    page = render_page([e])
    assert page.index("first text") < page.index("second text")
    assert ">plays</mark>" in page and ">drives</mark>" in page


def test_pair_inputs_are_checked(pair_classification_run: Path, tiny_run: Path) -> None:
    classifier = trustune.load(pair_classification_run)
    with pytest.raises(DataError, match=r"trained on text pairs.*text_pairs="):
        classifier.explain(FIRST)
    with pytest.raises(DataError, match="2 texts but 1 second texts"):
        classifier.explain([FIRST, FIRST], [SECOND])
    with pytest.raises(DataError, match="second text 1 of 1 is empty"):
        classifier.explain(FIRST, " ")
    with pytest.raises(DataError, match="trained on single texts; drop text_pairs"):
        trustune.load(tiny_run).explain(FIRST, SECOND)


def _cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trustune.cli.main", "explain", *map(str, args)],
        capture_output=True, text=True, env=ENV, timeout=600,
    )  # fmt: skip


def test_cli_explains_a_pair(pair_regression_run: Path, tmp_path: Path) -> None:
    done = _cli(pair_regression_run, "--text", FIRST, "--text-pair", SECOND, "--steps", "16")
    assert done.returncode == 0, done.stderr
    assert "first text: cat dog man plays" in done.stdout
    assert "second text: a red car drives fast" in done.stdout
    assert "predicted score" in done.stdout
    done = _cli(
        pair_regression_run, "--text", FIRST, "--text-pair", SECOND, "--format", "json",
        "--method", "occlusion",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    [e] = json.loads(done.stdout)
    assert e["text_pair"] == SECOND and e["segments"] == [0] * 4 + [1] * 5


def test_cli_refuses_a_missing_second_text_and_a_regression_target(
    pair_regression_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from trustune.cli.main import main

    assert main(["explain", str(pair_regression_run), "--text", FIRST]) == 2
    err = capsys.readouterr().err
    assert "give one --text-pair per --text (1 --text, 0 --text-pair)" in err
    args = ["explain", str(pair_regression_run), "--text", FIRST, "--text-pair", SECOND]
    assert main([*args, "--target", "score"]) == 2
    assert "explains its predicted score" in capsys.readouterr().err


def test_cli_explains_a_pair_file(
    pair_regression_run: Path, pair_files: tuple[Path, Path], tmp_path: Path
) -> None:
    output = tmp_path / "explanations.jsonl"
    done = _cli(
        pair_regression_run, "--data", pair_files[1], "--output", output, "--max-rows", "3",
        "--method", "gradient-x-input", "--quiet",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    first_rows = pair_files[1].read_text(encoding="utf-8").splitlines()[1:4]
    assert [(r["text"], r["text_pair"]) for r in rows] == [
        tuple(line.split("\t")[:2]) for line in first_rows
    ]
    assert all(set(r["segments"]) == {0, 1} for r in rows)
    assert "second text" in output.with_suffix(".html").read_text(encoding="utf-8")
