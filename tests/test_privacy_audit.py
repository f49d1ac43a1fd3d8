"""Membership-inference audit: metrics, a positive control (an overfit model leaks) and a
negative control (a model that guesses at random does not), the CLI and the report."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest

import trustune
from trustune.cli.main import main
from trustune.privacy.audit import (
    ATTACKS,
    AuditData,
    attack_metrics,
    neighbours,
    per_example_loss,
    register_attack,
    run_attacks,
)


def test_metrics_of_perfect_and_useless_scores() -> None:
    is_member = np.array([True] * 200 + [False] * 200)
    perfect = attack_metrics("p", "", np.r_[np.ones(200), np.zeros(200)], is_member, bootstrap=50)
    assert perfect.auc == 1.0 and perfect.tpr_at_fpr["0.01"] == 1.0
    assert perfect.roc["fpr"][0] == 0.0 and perfect.roc["tpr"][-1] == 1.0
    same = attack_metrics("s", "", np.zeros(400), is_member, bootstrap=50)
    assert same.auc == 0.5 and same.tpr_at_fpr["0.01"] == 0.0
    lo, hi = same.auc_ci
    assert lo <= 0.5 <= hi


def test_neighbours_are_close_and_deterministic() -> None:
    text = "the quick brown fox jumps over the lazy dog"
    first = neighbours(text, count=4, seed=1)
    assert first == neighbours(text, count=4, seed=1)
    assert all(n != text and abs(len(n.split()) - 9) <= 2 for n in first)
    assert neighbours("hello", count=2, seed=0) == ["hello", "hello"]


def test_attack_registry_refuses_duplicates() -> None:
    with pytest.raises(ValueError, match=r"attack 'loss' is already registered; known: \["):
        register_attack("loss", "again")(ATTACKS["loss"][1])


def test_random_guess_model_is_near_chance() -> None:
    rng = np.random.default_rng(0)
    n = 300
    texts = [f"text number {i}" for i in range(2 * n)]

    def guess(batch: list[str]) -> np.ndarray:
        p = rng.uniform(0.05, 0.95, size=len(batch))
        return np.c_[p, 1 - p]

    data = AuditData(
        texts=texts, labels=[i % 2 for i in range(2 * n)],
        is_member=np.array([True] * n + [False] * n),
        loss=lambda t, y: per_example_loss(guess, t, y), neighbour_count=2,
    )  # fmt: skip
    for result in run_attacks(data, bootstrap=200):
        lo, hi = result.auc_ci
        assert lo <= 0.5 <= hi, result.name
        assert abs(result.auc - 0.5) < 0.08


def _random_rows(path: Path, rows: int, seed: int, vocab: Path) -> Path:
    """Texts of 8 random whole-word tokens with random labels: learnable only by heart."""
    rng = random.Random(seed)
    words = [w for w in vocab.read_text(encoding="utf-8").split()[3000:6000] if w.isalpha()]
    lines = ["text,label"]
    for _ in range(rows):
        text = " ".join(rng.choice(words) for _ in range(8))
        lines.append(f"{text},{rng.choice(['yes', 'no'])}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def overfit_run(
    tmp_path_factory: pytest.TempPathFactory, tiny_model: Path
) -> tuple[Path, Path, Path]:
    """A tiny non-private model trained far past the point of memorising random labels."""
    folder = tmp_path_factory.mktemp("overfit")
    members = _random_rows(folder / "members.csv", 48, seed=1, vocab=tiny_model / "vocab.txt")
    others = _random_rows(folder / "others.csv", 48, seed=2, vocab=tiny_model / "vocab.txt")
    run = folder / "run"
    # validated once, at the end, so the model kept is the last (most overfit) one
    trustune.finetune(
        members, validation=others, model=str(tiny_model), output=run, epochs=30, batch_size=8,
        lr=5e-3, warmup_ratio=0.0, early_stopping_patience=0, evaluate_every=100_000,
        measure_latency=False,
    )  # fmt: skip
    return run, members, others


def test_overfit_model_leaks_membership(overfit_run: tuple[Path, Path, Path]) -> None:
    from trustune.privacy.audit import audit_privacy

    run, members, others = overfit_run
    audit = audit_privacy(
        trustune.load(run), members=members, non_members=others, bootstrap=200, neighbour_count=4
    )
    assert audit["auc"] > 0.7, audit["auc"]
    assert audit["auc_ci"][0] > 0.55
    by_name = {a["name"]: a for a in audit["attacks"]}
    assert set(by_name) == {"loss", "neighbourhood"}
    assert "memorised" in audit["reading"]
    manifest = json.loads((run / "trustune.json").read_text(encoding="utf-8"))
    assert manifest["privacy"]["audit"]["auc"] == audit["auc"]
    report = (run / "report.html").read_text(encoding="utf-8")
    assert "Membership-inference audit" in report and "data:image/png;base64" in report


def test_cli_audit_privacy_json(
    overfit_run: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    run, members, others = overfit_run
    code = main(
        ["audit", "privacy", str(run), "--members", str(members), "--non-members", str(others),
         "--neighbours", "2", "--json"]
    )  # fmt: skip
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert {"auc", "auc_ci", "tpr_at_1pct_fpr", "tpr_at_0.1pct_fpr", "attacks"} <= set(result)
    assert {"roc", "tpr_at_1pct_fpr_ci"} <= set(result["attacks"][0])


def test_cli_audit_refuses_overlapping_sets(
    tmp_path: Path, overfit_run: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    run, members, others = overfit_run
    mixed = tmp_path / "mixed.csv"  # unseen rows, and three training rows among them
    rows = others.read_text(encoding="utf-8").splitlines()
    mixed.write_text(
        "\n".join(rows + members.read_text(encoding="utf-8").splitlines()[1:4]) + "\n",
        encoding="utf-8",
    )
    code = main(
        ["audit", "privacy", str(run), "--members", str(members), "--non-members", str(mixed)]
    )
    assert code == 2
    assert "3 text(s) appear in both --members and --non-members" in capsys.readouterr().err


def test_cli_audit_refuses_swapped_files(
    overfit_run: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """The run knows its files: its validation rows are not members, its training rows not
    non-members."""
    run, members, others = overfit_run
    args = ["audit", "privacy", str(run), "--members"]
    assert main([*args, str(others), "--non-members", str(others)]) == 2
    assert "is the run's validation file: the model was never trained on" in capsys.readouterr().err
    assert main([*args, str(members), "--non-members", str(members)]) == 2
    assert "is the run's training file: the model was trained on every" in capsys.readouterr().err


def test_cli_audit_says_which_figures_are_unstable(
    overfit_run: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """48 non-members cannot pin down a 1% or 0.1% false-positive threshold: the terminal says so."""
    run, members, others = overfit_run
    code = main(
        ["audit", "privacy", str(run), "--members", str(members), "--non-members", str(others),
         "--neighbours", "2"]
    )  # fmt: skip
    assert code == 0
    captured = capsys.readouterr()
    out, err = " ".join(captured.out.split()), " ".join(captured.err.split())
    assert out.count("(unstable)") >= 4  # both TPR columns of both attacks
    assert "members: 48 rows of" in out and "(the whole file)" in out
    assert "TPR at 0.1% FPR is unstable: 0.1% of 48 non-members is 0.048 row(s)" in err
    assert "highest non-member score (so it measures TPR at 0% FPR)" in err
    assert "needs >= 10,000 non-members" in err and "needs >= 1,000 non-members" in err


def test_audit_uses_only_the_rows_the_run_trained_on(
    tmp_path: Path, tiny_run: Path, demo_files: tuple[Path, Path]
) -> None:
    """The run split its training file: members are the rows it trained on (its validation
    rows are left out, and said so); the same file as non-members gives only the held-out rows."""
    from trustune.privacy.audit import audit_privacy

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    manifest = json.loads((run / "trustune.json").read_text(encoding="utf-8"))
    trained, held_out = manifest["data"]["train"]["rows"], manifest["data"]["validation"]["rows"]
    train_file, test_file = demo_files
    audit = audit_privacy(
        trustune.load(run),
        members=train_file,
        non_members=test_file,
        bootstrap=20,
        neighbour_count=2,
    )
    assert audit["members"]["used"] == trained and audit["members"]["excluded_rows"] == held_out
    assert audit["members"]["rows"] == trained + held_out
    assert audit["non_members"]["used"] == 32 and audit["non_members"]["excluded_rows"] == 0
    assert any(
        f"the audit uses the {trained} row(s) it trained on and excluded the {held_out} row(s) "
        "it held out for validation" in note
        for note in audit["notes"]
    )
    assert set(audit["unstable"]) == {"0.01", "0.001"}
    report = (run / "report.html").read_text(encoding="utf-8")
    assert "(unstable)" in report and f"excluded the {held_out} row(s)" in report

    split = audit_privacy(
        trustune.load(run), members=train_file, non_members=train_file, bootstrap=20, neighbour_count=2,
        save=False,
    )  # fmt: skip
    assert split["members"]["used"] == trained and split["non_members"]["used"] == held_out
    assert split["non_members"]["part"] == "validation rows of the run's split"
