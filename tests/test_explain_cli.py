"""`trustune explain` as a subprocess: formats, batch mode, --global, --evaluate, bad input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ENV = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}


def trustune(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trustune.cli.main", "explain", *map(str, args)],
        capture_output=True, text=True, env=ENV, timeout=600,
    )  # fmt: skip


def _error(capsys: pytest.CaptureFixture[str], *args: str | Path) -> str:
    """Run the command in this process (the subprocess tests cover the real entry point)."""
    from trustune.cli.main import main

    assert main(["explain", *map(str, args)]) == 2
    stderr = capsys.readouterr().err
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def test_help_documents_every_flag(capsys: pytest.CaptureFixture[str]) -> None:
    from trustune.cli.main import main

    with pytest.raises(SystemExit) as exit_:
        main(["explain", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--text", "--data", "--method", "--target", "--format", "--output", "--global",
                 "--evaluate", "--sample", "--steps", "--batch-size", "--precision"):  # fmt: skip
        assert flag in out


def test_text_and_json(tmp_path: Path, tiny_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = trustune(tiny_run, "--text", "refund my card please", "--steps", "8")
    assert result.returncode == 0, result.stderr
    assert "refund my card please" in result.stdout
    assert "predicted" in result.stdout and "integrated-gradients" in result.stdout

    from trustune.cli.main import main  # in this process: the subprocess path is covered above

    code = main(["explain", str(tiny_run), "--text", "refund my card", "--text",
                 "the app crashes", "--method", "occlusion", "--target", "billing",
                 "--format", "json"])  # fmt: skip
    assert code == 0
    explained = json.loads(capsys.readouterr().out)
    assert [e["words"] for e in explained] == [["refund", "my", "card"], ["the", "app", "crashes"]]
    assert all(e["target"] == "billing" and len(e["scores"]) == 3 for e in explained)
    assert set(explained[0]["probabilities"]) == {"account", "billing", "shipping", "technical"}

    long_text = " ".join(["refund"] * 300)
    assert main(["explain", str(tiny_run), "--text", long_text, "--method", "saliency"]) == 0
    out = capsys.readouterr().out
    assert "truncated: longer than the model's max length of" in out and "word(s) were not" in out


def test_html_page(tmp_path: Path, tiny_run: Path) -> None:
    from trustune.cli.main import main

    page = tmp_path / "one.html"
    code = main(["explain", str(tiny_run), "--text", "<i>where</i> is my parcel", "--format",
                 "html", "--output", str(page), "--method", "gradient-x-input"])  # fmt: skip
    assert code == 0
    html = page.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and "<mark" in html
    assert "&lt;" in html and "<i>" not in html  # the text is escaped


def test_data_batch_global_and_evaluate(
    tmp_path: Path, tiny_run: Path, demo_files: tuple[Path, Path]
) -> None:
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    out = tmp_path / "out" / "explained.jsonl"
    result = trustune(run, "--data", demo_files[1], "--max-rows", "12", "--output", out,
                      "--global", "--min-count", "1", "--evaluate", "--sample", "8",
                      "--method", "occlusion", "--quiet")  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["row"] for r in rows] == list(range(1, 13))
    assert all(len(r["words"]) == len(r["scores"]) and "true_label" in r for r in rows)
    page = out.with_suffix(".html").read_text(encoding="utf-8")
    assert page.count('class="tx-card') == 12 and "Top words per class" in page
    verdicts = page.count("✓ right: the true label is") + page.count("✗ wrong: the true label is")
    assert verdicts == 12 and " predictions right" in page  # the file has true labels
    assert "top words of billing" in result.stdout and "faithfulness on 8 texts" in result.stdout

    stored = json.loads((run / "explanations.json").read_text(encoding="utf-8"))
    assert stored["global"]["method"] == "occlusion" and stored["global"]["texts"] == 12
    assert [m["method"] for m in stored["faithfulness"]["methods"]] == ["occlusion", "random"]
    assert stored["examples"] and stored["global"]["data"]["rows"] == 12
    manifest = json.loads((run / "trustune.json").read_text(encoding="utf-8"))
    assert set(manifest["explanations"]["faithfulness"]["methods"]) == {"occlusion", "random"}
    report = (run / "report.html").read_text(encoding="utf-8")
    assert "Faithfulness" in report and "Example explanations" in report

    # `trustune report` keeps the section when it rebuilds the report
    (run / "report.html").unlink()
    from trustune.cli.main import main

    assert main(["report", str(run)]) == 0
    assert "Example explanations" in (run / "report.html").read_text(encoding="utf-8")


def test_bad_input_is_one_line(
    tmp_path: Path, tiny_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert "the methods are integrated-gradients, gradient-x-input" in _error(
        capsys, tiny_run, "--text", "hi", "--method", "magic"
    )
    assert "unknown label 'refunds'; the labels are ['account', 'billing'" in _error(
        capsys, tiny_run, "--text", "hi", "--target", "refunds"
    )
    assert "text 1 of 1 is empty" in _error(capsys, tiny_run, "--text", "  ")
    assert "--global and --evaluate need --data FILE" in _error(
        capsys, tiny_run, "--text", "hi", "--global"
    )
    assert "--data needs --output FILE.jsonl" in _error(capsys, tiny_run, "--data", "x.csv")
    assert "--steps: 0 is not allowed" in _error(capsys, tiny_run, "--text", "a", "--steps", "0")


@pytest.fixture
def incomplete_method() -> Iterator[str]:
    """A method whose scores miss their sum by 0.3, registered for one test only."""
    import numpy as np

    from trustune.explain import MethodResult, register_explainer, registry

    name = "test-incomplete"

    @register_explainer(name, summary="scores that miss their sum", needs_gradients=False)
    def incomplete(model: object, batch: object, options: object) -> MethodResult:
        texts = batch.texts  # type: ignore[attr-defined]
        return MethodResult([np.full(t.n_words, 0.1) for t in texts], [0.3] * len(texts))

    try:
        yield name
    finally:
        registry._EXPLAINERS.pop(name)


def test_completeness_error_is_a_warning(
    tiny_run: Path, incomplete_method: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Scores that do not add up are flagged in the output and on stderr, with --steps to use."""
    from trustune.cli.main import main

    name = incomplete_method
    assert main(["explain", str(tiny_run), "--text", "refund my card", "--text", "app crash",
                 "--method", name, "--steps", "50"]) == 0  # fmt: skip
    captured = capsys.readouterr()
    assert "completeness error +0.3 (too large: see the warning)" in " ".join(captured.out.split())
    err = " ".join(captured.err.split())
    assert f"warning: the {name} scores of 2 of 2 text(s) do not add up" in err
    assert "Rerun with --steps 200" in err
    assert main(["explain", str(tiny_run), "--text", "refund", "--method", name,
                 "--format", "json"]) == 0  # fmt: skip
    [e] = json.loads(capsys.readouterr().out)
    assert "completeness error +0.3" in e["completeness_warning"]
