"""Runs trained on text pairs through the membership audit and `trustune explain --evaluate`,
by the real CLI: classification pairs (a split training file) and regression pairs (a separate
validation file, scores standardised in training and folded into the saved head)."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import trustune
from trustune.cli.main import main
from trustune.errors import DataError

ENV = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}
_WORDS = ["cat", "dog", "man", "woman", "plays", "guitar", "runs", "red", "blue", "car"]


def _cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trustune.cli.main", *map(str, args)],
        capture_output=True, text=True, env=ENV, timeout=600,
    )  # fmt: skip


def _similar_pairs(path: Path, rows: int, seed: int) -> Path:
    """Sentence pairs labelled by whether they share most of their words."""
    rng = random.Random(seed)
    lines = ["sentence1\tsentence2\tlabel"]
    for _ in range(rows):
        a = [rng.choice(_WORDS) for _ in range(5)]
        b = [w if rng.random() < 0.5 else rng.choice(_WORDS) for w in a]
        same = sum(x == y for x, y in zip(a, b, strict=True))
        lines.append(f"{' '.join(a)}\t{' '.join(b)}\t{'similar' if same >= 3 else 'different'}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def pair_classes(
    tmp_path_factory: pytest.TempPathFactory, tiny_model: Path
) -> tuple[Path, Path, Path]:
    """A tiny text-pair classification run (its file split for validation), its training file
    and a file of pairs it never saw."""
    folder = tmp_path_factory.mktemp("pair-classes")
    train = _similar_pairs(folder / "train.tsv", 120, seed=5)
    unseen = _similar_pairs(folder / "unseen.tsv", 40, seed=6)
    run = folder / "run"
    trustune.finetune(
        train, model=str(tiny_model), output=run, epochs=1, batch_size=16, lr=1e-3,
        measure_latency=False, progress=False,
    )  # fmt: skip
    return run, train, unseen


def test_audit_of_a_pair_classification_run(
    pair_classes: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    """Members are the pairs its split trained on; the loss is that of both texts together."""
    source, train, unseen = pair_classes
    run = tmp_path / "run"
    shutil.copytree(source, run)
    done = _cli(
        "audit", "privacy", run, "--members", train, "--non-members", unseen, "--neighbours",
        "2", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    audit = json.loads(done.stdout)
    manifest = json.loads((run / "trustune.json").read_text(encoding="utf-8"))
    assert audit["members"]["part"] == "training rows of the run's split"
    assert audit["members"]["used"] == manifest["data"]["train"]["rows"]
    assert audit["non_members"]["used"] == 40
    assert {a["name"] for a in audit["attacks"]} == {"loss", "neighbourhood"}
    assert all(0.0 <= a["auc"] <= 1.0 for a in audit["attacks"])
    assert manifest["privacy"]["audit"]["auc"] == audit["auc"]
    assert "Membership-inference audit" in (run / "report.html").read_text(encoding="utf-8")


def test_audit_refuses_pairs_in_both_sets(
    regression_run: Path, pair_files: tuple[Path, Path], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """A pair is one example: the same pair in both files is refused, and the same first text
    with another second text is not the same example."""
    train, validation = pair_files
    rows = validation.read_text(encoding="utf-8").splitlines()
    first, second, score = train.read_text(encoding="utf-8").splitlines()[1].split("\t")
    mixed = tmp_path / "mixed.tsv"
    mixed.write_text(
        "\n".join([*rows, f"{first}\t{second}\t{score}", f"{first}\tred red car\t{score}"]) + "\n",
        encoding="utf-8",
    )
    code = main(
        ["audit", "privacy", str(regression_run), "--members", str(train), "--non-members",
         str(mixed)]
    )  # fmt: skip
    assert code == 2
    assert "1 text pair(s) appear in both --members and --non-members" in capsys.readouterr().err


def test_explain_evaluate_on_pairs(pair_classes: tuple[Path, Path, Path], tmp_path: Path) -> None:
    """Faithfulness of a pair run: rationales over the words of both texts, saved into the run."""
    source, _, unseen = pair_classes
    run = tmp_path / "run"
    shutil.copytree(source, run)
    done = _cli(
        "explain", run, "--data", unseen, "--evaluate", "--sample", "6", "--method", "occlusion",
        "--format", "json", "--quiet",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)["faithfulness"]
    assert result["texts"] == 6
    assert [m["method"] for m in result["methods"]] == ["occlusion", "random"]
    assert all(np.isfinite(m["comprehensiveness"]) for m in result["methods"])
    stored = json.loads((run / "explanations.json").read_text(encoding="utf-8"))
    assert stored["faithfulness"]["methods"] == result["methods"]
    assert stored["faithfulness"]["data"]["rows"] == 40


def test_faithfulness_ranks_the_words_of_both_texts(
    pair_classes: tuple[Path, Path, Path],
) -> None:
    """Deleting the second text's words (ranked first) is deleting them from the pair input."""
    from trustune.explain import ExplainableModel
    from trustune.explain.faithfulness import evaluate_faithfulness, faithfulness_of
    from trustune.explain.words import tokenize_words

    run, _, _ = pair_classes
    classifier = trustune.load(run)
    model = ExplainableModel.from_classifier(classifier)
    first, second = "cat dog man plays", "a red car drives fast"
    [text] = tokenize_words(model.tokenizer, [first], max_length=model.max_length, pairs=[second])
    assert text.segments == (0,) * 4 + (1,) * 5
    scores = [0.0] * 4 + [1.0] * 5  # the second text's 5 words first: 50% of 9 words is 5
    full = classifier.predict([first], [second])[0]
    target = classifier.labels.index(full.label)
    result = faithfulness_of(model, [text], [scores], [target], bins=(50,))
    kept = model.predict_ids(
        [text.without_words(set(range(4)))], token_types=[text.types_without_words(set(range(4)))]
    )[0, target]
    assert result.sufficiency == pytest.approx(full.score - kept, abs=1e-5)
    with pytest.raises(DataError, match="2 texts but 1 second texts"):
        evaluate_faithfulness(model, [first, first], text_pairs=[second], methods=["occlusion"])


def test_audit_of_a_pair_regression_run_reads_the_standardised_loss(
    regression_run: Path, pair_files: tuple[Path, Path], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """The saved head gives scores in the original unit; the audit's loss is the training loss,
    on standardised scores: its loss attack is the AUC of -((prediction - score) / sd)²."""
    from trustune.data import read_labeled
    from trustune.privacy.audit import attack_metrics

    run = tmp_path / "run"
    shutil.copytree(regression_run, run)
    train, validation = pair_files
    code = main(  # in this process: the subprocess path is covered above
        ["audit", "privacy", str(run), "--members", str(train), "--non-members",
         str(validation), "--neighbours", "2", "--json"]
    )  # fmt: skip
    assert code == 0
    audit = json.loads(capsys.readouterr().out)
    assert (audit["members"]["used"], audit["non_members"]["used"]) == (160, 40)

    regressor = trustune.load(run)
    assert regressor.task.folded
    losses = []
    for path in (train, validation):
        labeled, _ = read_labeled(path, pairs=True)
        assert labeled.pairs is not None
        predicted = np.array([p.value for p in regressor.predict(labeled.texts, labeled.pairs)])
        truth = np.array([float(v) for v in labeled.raw_labels])
        losses.append(((predicted - truth) / regressor.task.scale.std) ** 2)
    is_member = np.r_[np.ones(160, bool), np.zeros(40, bool)]
    expected = attack_metrics("loss", "", -np.concatenate(losses), is_member, bootstrap=0)
    [loss_attack] = [a for a in audit["attacks"] if a["name"] == "loss"]
    assert loss_attack["auc"] == pytest.approx(expected.auc, abs=2e-4)
