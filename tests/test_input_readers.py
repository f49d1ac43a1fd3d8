"""Malformed, huge or hostile data files: one-line errors naming the file and line, cut texts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trustune.data import load_texts, load_training_data, read_labeled, read_table
from trustune.data.readers import MAX_LINE_BYTES
from trustune.errors import DataFileError
from trustune.messages import shown, shown_names

GOOD = '{"text": "fine", "label": "a"}\n'


@pytest.mark.parametrize(
    ("second_line", "message"),
    [
        ('{"text": "x", "label": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested too deeply"),
        ('{"text": "x", "label": ' + "9" * 5000 + "}", "an integer of 5000 digits"),
        ("[1, 2]", 'expected a JSON object like {"text"'),
        ('{"text": "x" "label": 1}', "is not valid JSON: Expecting ',' delimiter"),
    ],
)
def test_malformed_jsonl_names_file_and_line(
    tmp_path: Path, second_line: str, message: str
) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text(GOOD + second_line + "\n" + GOOD, encoding="utf-8")
    with pytest.raises(DataFileError) as e:
        read_table(path)
    text = str(e.value)
    assert text.startswith(f"{path} line 2")
    assert message in text
    assert "\n" not in text and len(text) < 300


def test_jsonl_with_a_bom_is_read(tmp_path: Path) -> None:
    path = tmp_path / "bom.jsonl"
    path.write_text("\ufeff" + GOOD + '{"text": "bad", "label": "b"}\n', encoding="utf-8")
    data, columns = read_labeled(path)
    assert (columns.text, columns.label) == ("text", "label")
    assert data.texts == ["fine", "bad"]


def test_csv_with_a_5000_digit_label_trains_as_text(tmp_path: Path) -> None:
    huge = "9" * 5000
    path = tmp_path / "d.csv"
    path.write_text(f"text,label\na,{huge}\nb,1\nc,{huge}\nd,1\n", encoding="utf-8")
    from trustune.config import RunConfig
    from trustune.tasks import TextClassification, prepare_training_data

    config = RunConfig.from_dict({"data": {"train_file": str(path), "validation_file": str(path)}})
    task = prepare_training_data(config).task
    assert isinstance(task, TextClassification)  # a 5000-digit number is not taken for a score
    assert set(task.label_map.names) == {"1", huge}


def test_ragged_csv_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("text,label\nhello,a\nhi, there,b\n", encoding="utf-8")
    with pytest.raises(DataFileError, match=r"d.csv line 3: 3 fields, expected 2; quote texts"):
        read_table(path)


def test_not_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "latin.csv"
    path.write_bytes("text,label\nok,a\ncaf\xe9,b\n".encode("latin-1"))
    with pytest.raises(DataFileError, match=r"latin.csv line 3 is not UTF-8 text"):
        read_table(path)


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".parquet"])
def test_texts_longer_than_max_chars_are_cut_when_read(tmp_path: Path, suffix: str) -> None:
    import pandas as pd

    frame = pd.DataFrame({"text": ["x" * 250, "short", "é" * 101], "label": ["a", "b", "a"]})
    path = tmp_path / f"d{suffix}"
    if suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True, force_ascii=False)
    elif suffix == ".parquet":
        frame.to_parquet(path)
    else:
        frame.to_csv(path, sep="," if suffix == ".csv" else "\t", index=False)
    data, _ = read_labeled(path, max_chars=100)
    assert [len(t) for t in data.texts] == [100, 5, 100]
    assert data.texts[2] == "é" * 100
    assert data.info["chars_cut"] == 2 and data.cut == [True, False, True]
    texts, kept = load_texts(path, max_chars=100)
    assert [len(t) for t in texts] == [100, 5, 100]
    assert kept.attrs["chars_cut"] == 2
    assert len(kept["text"][0]) == 100  # the rows written out with the predictions are cut too


def test_split_counts_cut_texts_per_part(tmp_path: Path) -> None:
    rows = "".join(f"{'y' * (300 if i < 10 else 5)} {i},{'ab'[i % 2]}\n" for i in range(40))
    path = tmp_path / "d.csv"
    path.write_text("text,label\n" + rows, encoding="utf-8")
    data = load_training_data(path, validation_fraction=0.25, max_chars=50)
    assert data.train.info["chars_cut"] + data.validation.info["chars_cut"] == 10
    assert max(len(t) for t in data.train.texts + data.validation.texts) == 50


def test_a_line_over_the_limit_is_refused_without_reading_it_whole(tmp_path: Path) -> None:
    path = tmp_path / "huge.csv"
    with open(path, "w", encoding="utf-8") as f:
        f.write("text,label\n")
        f.write("z" * (MAX_LINE_BYTES + 10) + ",a\n")
    with pytest.raises(DataFileError, match=r"huge.csv line 2 is longer than 16 MiB"):
        read_table(path)


def test_error_echoes_are_bounded() -> None:
    nested: list[object] = ["lol"] * 9
    for _ in range(9):  # the shape of a YAML alias bomb: 9**10 strings when expanded
        nested = [nested] * 9
    assert len(shown(nested)) <= 80
    assert shown(1 << 20000) == "<an integer of about 6021 digits>"
    assert shown("q" * 10_000).endswith("…") and len(shown("q" * 10_000)) == 80
    many = shown_names([f"column {i} " + "w" * 100 for i in range(500)])
    assert many.endswith("… (480 more)]") and len(many) < 1000
    assert shown_names(["body", "label"]) == "['body', 'label']"


def test_jsonl_nested_values_are_kept_as_json_text(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({"text": "hi", "label": "a", "meta": {"k": [1]}}) + "\n")
    assert read_table(path)["meta"][0] == '{"k": [1]}'


def test_tsv_fields_quoted_the_csv_way_are_unquoted(tmp_path: Path) -> None:
    path = tmp_path / "sts.tsv"
    path.write_text(
        'sentence1\tsentence2\tscore\n"A dog in a ""superman"" shirt."\ta "quote\t4.0\n',
        encoding="utf-8",
    )
    frame = read_table(path)
    assert frame["sentence1"][0] == 'A dog in a "superman" shirt.'
    assert frame["sentence2"][0] == 'a "quote'  # a stray quote stays text (GLUE style)
