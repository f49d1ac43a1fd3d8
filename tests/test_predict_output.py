"""`trustune predict --input --output`: one record schema in every output format."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import trustune
from trustune.cli.main import main
from trustune.cli.predict import prediction_fields

ENV = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}
LABELS = ("account", "billing", "shipping", "technical")
FIELDS = ["prediction", "prediction_score", *(f"prediction_prob_{label}" for label in LABELS)]


def _read(path: Path) -> pd.DataFrame:
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    if path.suffix == ".jsonl":
        return pd.read_json(path, lines=True, dtype=False, precise_float=True)
    return pd.read_csv(path, sep="\t" if path.suffix == ".tsv" else ",", keep_default_na=False)


def test_every_output_format_holds_the_same_records(
    tmp_path: Path, tiny_run: Path, demo_files: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    test = pd.read_csv(demo_files[1])
    source = tmp_path / "input.parquet"  # an id column before the text, the true label after it
    test.insert(0, "id", [f"t{i}" for i in range(len(test))])
    test.to_parquet(source, index=False)
    frames = {}
    for suffix in (".csv", ".tsv", ".jsonl", ".parquet"):
        out = tmp_path / f"pred{suffix}"
        assert main(["predict", str(tiny_run), "--input", str(source), "--output", str(out),
                     "--quiet"]) == 0  # fmt: skip
        assert f"wrote {len(test)} predictions to {out}" in capsys.readouterr().out
        frames[suffix] = _read(out)
        assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]

    expected = [
        prediction_fields(p) for p in trustune.load(tiny_run).predict(test["text"].tolist())
    ]
    reference = frames[".parquet"]
    assert list(reference.columns) == ["id", "text", "label", *FIELDS]
    assert reference[["id", "text", "label"]].equals(test)  # the true label survives
    assert reference[FIELDS].to_dict(orient="records") == expected
    for suffix, frame in frames.items():
        assert list(frame.columns) == list(reference.columns), suffix
        assert frame.to_dict(orient="records") == reference.to_dict(orient="records"), suffix


def test_text_json_uses_the_same_field_names(
    tiny_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["predict", str(tiny_run), "--text", "refund my card", "--json"]) == 0
    (record,) = json.loads(capsys.readouterr().out)
    assert list(record) == ["text", *FIELDS]
    assert record["prediction"] in LABELS
    assert record["prediction_score"] == max(record[f] for f in FIELDS[2:])


@pytest.mark.parametrize("column", ["prediction", "prediction_prob_billing"])
def test_an_input_column_named_like_a_prediction_field_is_refused(
    tmp_path: Path, tiny_run: Path, column: str
) -> None:
    source = tmp_path / "texts.csv"
    source.write_text(f"text,{column}\nrefund my card,x\n", encoding="utf-8")
    out = tmp_path / "pred.jsonl"
    result = subprocess.run(
        [sys.executable, "-m", "trustune.cli.main", "predict", str(tiny_run), "--input",
         str(source), "--output", str(out), "--quiet"],
        capture_output=True, text=True, env=ENV, timeout=300,
    )  # fmt: skip
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [
        f"error: --input has a column '{column}', a name predict writes its results under "
        "(prediction, prediction_score, prediction_prob_account, ...); rename that column in the "
        "input file and run again"
    ]
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["texts.csv"]


def test_a_regression_predicts_one_value_field() -> None:
    from trustune.regressor import ScorePrediction

    assert prediction_fields(ScorePrediction(2.75)) == {"prediction": 2.75}


def test_a_pair_run_predicts_from_text_and_text_pair(
    regression_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    firsts, seconds = ["cat dog man plays", "red car"], ["cat dog woman plays", "blue car drives"]
    expected = [p.value for p in trustune.load(regression_run).predict(firsts, seconds)]
    argv = ["predict", str(regression_run)]
    for first, second in zip(firsts, seconds, strict=True):
        argv += ["--text", first, "--text-pair", second]
    assert main([*argv, "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert records == [
        {"text": a, "text_pair": b, "prediction": v}
        for a, b, v in zip(firsts, seconds, expected, strict=True)
    ]
    assert main(argv) == 0  # the table shows what a regression predicts: no score, no classes
    table = capsys.readouterr().out
    header = next(line for line in table.splitlines() if "prediction" in line)
    assert [cell.strip() for cell in header.strip("┃│ ").split("┃")] == [
        "text", "text pair", "prediction",
    ]  # fmt: skip
    assert f"{expected[0]:.3f}" in table and "probabilities" not in table


@pytest.mark.parametrize("named", [False, True])
def test_a_pair_file_keeps_its_columns_and_gets_one_value_per_row(
    tmp_path: Path, regression_run: Path, pair_files: tuple[Path, Path], named: bool,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    dev = pd.read_csv(pair_files[1], sep="\t")
    dev.insert(0, "id", [f"p{i}" for i in range(len(dev))])
    options = []
    if named:  # columns with names predict cannot guess, given by flags
        dev = dev.rename(columns={"sentence1": "question", "sentence2": "answer"})
        options = ["--text-column", "question", "--text-pair-column", "answer"]
    source = tmp_path / "pairs.csv"
    dev.to_csv(source, index=False)
    out = tmp_path / "pred.jsonl"
    argv = ["predict", str(regression_run), "--input", str(source), "--output", str(out)]
    assert main([*argv, *options, "--quiet"]) == 0
    assert f"wrote {len(dev)} predictions" in capsys.readouterr().out
    written = _read(out)
    assert list(written.columns) == [*dev.columns, "prediction"]
    as_text = pd.read_csv(source, dtype=str, keep_default_na=False)  # a CSV's cells are text
    assert written[list(dev.columns)].equals(as_text)  # the true score survives
    first, second = dev.columns[1], dev.columns[2]
    model = trustune.load(regression_run)
    expected = model.predict(dev[first].tolist(), dev[second].tolist())
    assert written["prediction"].tolist() == [p.value for p in expected]


@pytest.mark.parametrize(
    ("run", "extra", "message"),
    [
        ("pairs", ["--text", "a dog"],
         "RUN was trained on text pairs ('sentence1' and 'sentence2'); give the second text of "
         "each --text with --text-pair TEXT"),
        ("single", ["--text", "refund my card", "--text-pair", "my card"],
         "RUN was trained on single texts; drop --text-pair"),
        ("pairs", ["--text", "a", "--text", "b", "--text-pair", "c"],
         "2 --text but 1 --text-pair; give one --text-pair per --text"),
        ("single", ["--input", "IN", "--output", "OUT", "--text-pair-column", "b"],
         "RUN was trained on single texts; drop --text-pair-column"),
        ("pairs", ["--input", "IN", "--output", "OUT", "--text-pair", "b"],
         "--text-pair goes with --text; with --input the second texts are a column of the file "
         "(--text-pair-column)"),
    ],
)  # fmt: skip
def test_pair_arguments_that_do_not_fit_the_run_are_one_line_errors(
    tmp_path: Path, tiny_run: Path, regression_run: Path, run: str, extra: list[str],
    message: str, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    folder = str(regression_run if run == "pairs" else tiny_run)
    source = tmp_path / "texts.csv"
    source.write_text("text\nrefund my card\n", encoding="utf-8")
    out = tmp_path / "pred.jsonl"
    paths = {"IN": str(source), "OUT": str(out)}
    assert main(["predict", folder, *(paths.get(a, a) for a in extra)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [f"error: {message.replace('RUN', folder)}"]
    assert not out.exists()


def test_the_cli_refuses_a_pair_run_without_second_texts(regression_run: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "trustune.cli.main", "predict", str(regression_run), "--text",
         "a dog runs"],
        capture_output=True, text=True, env=ENV, timeout=300,
    )  # fmt: skip
    assert result.returncode == 2
    assert [line for line in result.stderr.splitlines() if line.strip()] == [
        f"error: {regression_run} was trained on text pairs ('sentence1' and 'sentence2'); give "
        "the second text of each --text with --text-pair TEXT"
    ]
    assert result.stdout == ""


def test_the_readme_pair_commands_run_as_written(
    tmp_path: Path, regression_run: Path, pair_files: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    commands = [
        line.split(" #", 1)[0] for line in readme.splitlines()
        if line.startswith("trustune predict runs/sts ")
    ]  # fmt: skip
    assert len(commands) == 2
    monkeypatch.chdir(tmp_path)
    shutil.copytree(regression_run, tmp_path / "runs" / "sts")
    dev = pd.read_csv(pair_files[1], sep="\t")
    dev.rename(columns={"sentence1": "question", "sentence2": "answer"}).to_csv(
        tmp_path / "pairs.tsv", sep="\t", index=False
    )
    for command in commands:
        assert main([*shlex.split(command)[1:], "--quiet"]) == 0, command
    assert "prediction" in capsys.readouterr().out
    assert len(pd.read_csv(tmp_path / "scored.csv")) == len(dev)
