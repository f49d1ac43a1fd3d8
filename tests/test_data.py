from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from trustune.data import LabelMap, detect_columns, load_training_data, read_labeled, read_table
from trustune.errors import ColumnError, DataError, DataFileError, LabelError

Write = Callable[[str, str], Path]


def test_csv_with_header(write_csv: Write) -> None:
    path = write_csv("a.csv", 'text,label\n"hello, world",pos\nbad day,neg\n')
    data, columns = read_labeled(path)
    assert columns.text == "text" and columns.label == "label"
    assert data.texts == ["hello, world", "bad day"]


def test_tsv_without_header_keeps_quotes(write_csv: Write) -> None:
    path = write_csv("a.tsv", 'it \'s a "great" film\t1\nawful\t0\n')
    frame = read_table(path)
    assert list(frame.columns) == ["text", "label"]
    assert frame.iloc[0, 0] == 'it \'s a "great" film'


def test_sst2_style_tsv_with_header(write_csv: Write) -> None:
    path = write_csv("s.tsv", 'sentence\tlabel\nthe movie " rocks\t1\ndull\t0\n')
    data, columns = read_labeled(path)
    assert columns.text == "sentence"
    assert data.raw_labels == ["1", "0"]


def test_jsonl_and_parquet(tmp_path: Path) -> None:
    frame = pd.DataFrame({"review": ["好看的电影", "terrible"], "sentiment": [1, 0]})
    frame.to_json(tmp_path / "d.jsonl", orient="records", lines=True, force_ascii=False)
    frame.to_parquet(tmp_path / "d.parquet")
    for name in ("d.jsonl", "d.parquet"):
        data, columns = read_labeled(tmp_path / name)
        assert columns.text == "review" and columns.label == "sentiment"
        assert data.texts[0] == "好看的电影"


def test_missing_file_and_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match="does not exist"):
        read_table(tmp_path / "nope.csv")
    (tmp_path / "d.xlsx").write_text("x", encoding="utf-8")
    with pytest.raises(
        DataFileError, match=r"unknown data format '.xlsx'. Use one of: csv \(.csv\); tsv"
    ):
        read_table(tmp_path / "d.xlsx")


def test_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "latin.csv").write_bytes("text,label\ncaf\xe9,a\n".encode("latin-1"))
    with pytest.raises(DataFileError, match="is not UTF-8 text"):
        read_table(tmp_path / "latin.csv")


def test_no_such_column_lists_columns(write_csv: Write) -> None:
    path = write_csv("a.csv", "body,label\nx,1\ny,0\n")
    with pytest.raises(
        ColumnError, match=r"no text column 'comment'; the columns are \['body', 'label'\]"
    ):
        read_labeled(path, text_column="comment")


def test_ambiguous_columns_ask_for_flags() -> None:
    frame = pd.DataFrame({"a": ["x"], "b": ["y"], "c": ["z"]})
    with pytest.raises(ColumnError, match="Pass --text-column and --label-column"):
        detect_columns(frame)


def test_columns_detected_by_content() -> None:
    frame = pd.DataFrame({"q": ["a long text here", "another long text"], "k": ["x", "y"]})
    columns = detect_columns(frame)
    assert (columns.text, columns.label) == ("q", "k")


def test_empty_texts_name_rows(write_csv: Write) -> None:
    path = write_csv("a.csv", "text,label\nfine,a\n,b\n   ,a\nok,\ngood,b\n")
    with pytest.raises(
        DataError,
        match=r"3 row\(s\) have an empty text or label \(data rows 2, 3, 4.*--skip-bad-rows",
    ):
        read_labeled(path)
    data, _ = read_labeled(path, skip_bad_rows=True)
    assert data.texts == ["fine", "good"]
    assert data.info["skipped_rows"] == 3


def test_label_map_ints_and_strings() -> None:
    ints = LabelMap.from_values(["10", 2, "1", 2.0])
    assert ints.names == (1, 2, 10)
    assert ints.encode(["2", 10], source="x") == [1, 2]
    strings = LabelMap.from_values(["pos", "neg", "pos"])
    assert strings.names == ("neg", "pos")


def test_one_class_only(write_csv: Write) -> None:
    path = write_csv("a.csv", "text,label\nx,spam\ny,spam\n")
    with pytest.raises(LabelError, match=r"one class only \('spam'\)"):
        load_training_data(path)


def test_unseen_validation_labels(write_csv: Write) -> None:
    train = write_csv("t.csv", "text,label\na,x\nb,y\nc,x\nd,y\n")
    val = write_csv("v.csv", "text,label\na,x\nb,z\n")
    with pytest.raises(
        LabelError, match=r"has labels unseen in training: \['z'\]. The model knows \['x', 'y'\]"
    ):
        _prepared(train, validation_file=str(val))


def test_stratified_split_and_fingerprints(write_csv: Write) -> None:
    rows = "".join(f"text {i},{'a' if i % 4 else 'b'}\n" for i in range(100))
    path = write_csv("t.csv", "text,label\n" + rows)
    data = _prepared(path, validation_fraction=0.2, seed=1).data
    assert len(data.train) == 80 and len(data.validation) == 20
    assert data.validation.info["class_counts"] == {"a": 15, "b": 5}
    assert set(data.train.texts).isdisjoint(data.validation.texts)
    assert data.train.info["sha256"] == data.validation.info["sha256"]
    again = _prepared(path, validation_fraction=0.2, seed=1).data
    assert again.validation.texts == data.validation.texts


def test_texts_to_predict_keep_other_columns(write_csv: Write) -> None:
    from trustune.data import load_texts

    path = write_csv("p.csv", "id,text,source\n1,hello,web\n2,,app\n3,bye,web\n")
    with pytest.raises(DataError, match=r"1 row\(s\) have an empty text \(data rows 2"):
        load_texts(path)
    texts, frame = load_texts(path, skip_bad_rows=True)
    assert texts == ["hello", "bye"]
    assert frame["id"].tolist() == ["1", "3"]
    only = write_csv("only.csv", "message\nhi there\n")
    assert load_texts(only)[0] == ["hi there"]


def _prepared(path: Path, *, seed: int = 42, **data: Any) -> Any:
    """The training data of ``path`` as a run prepares them: task detected, targets encoded."""
    from trustune.config import RunConfig
    from trustune.tasks import prepare_training_data

    config = RunConfig.from_dict(
        {"data": {"train_file": str(path), **data}, "train": {"seed": seed}}
    )
    return prepare_training_data(config)


def _rows_csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    import csv

    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    return path


def test_swapped_text_and_label_columns_are_refused(tmp_path: Path) -> None:
    labels = ["billing", "shipping", "account"]
    rows = [(f"my request number {i} about {labels[i % 3]}", labels[i % 3]) for i in range(300)]
    path = _rows_csv(tmp_path / "swapped.csv", rows)
    message = (
        r"the label column 'text' of .*swapped.csv looks like text, not labels: 300 of 300 "
        r"values are distinct, \d+ characters on average; if the columns are swapped pass "
        r"--text-column 'text' --label-column 'label'"
    )
    with pytest.raises(DataError, match=message):
        _prepared(path, text_column="label", label_column="text")
    prepared = _prepared(path)  # the right way round
    assert len(prepared.task.label_map) == 3


def test_many_short_labels_and_few_shot_data_are_not_taken_for_text(tmp_path: Path) -> None:
    few_shot = [
        (f"example text number {i}", f"a rather long label name {i % 8}") for i in range(24)
    ]
    assert len(_prepared(_rows_csv(tmp_path / "few.csv", few_shot)).task.label_map) == 8
    codes = [(f"text {i}", f"C{i % 150}") for i in range(300)]  # 150 short codes, 2 rows each
    assert len(_prepared(_rows_csv(tmp_path / "codes.csv", codes)).task.label_map) == 150
