"""Tests of the demo data set generator."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from trustune.data.demo import DEMO_LABELS, generate_demo_rows, write_demo_dataset
from trustune.errors import ConfigError


def test_same_seed_gives_same_rows() -> None:
    assert generate_demo_rows(rows=200, seed=7) == generate_demo_rows(rows=200, seed=7)


def test_different_seed_gives_different_rows() -> None:
    assert generate_demo_rows(rows=200, seed=1) != generate_demo_rows(rows=200, seed=2)


@pytest.mark.parametrize("rows", [8, 9, 10, 11, 101, 800])
def test_row_count_and_balance(rows: int) -> None:
    data = generate_demo_rows(rows=rows, seed=3)
    assert len(data) == rows
    counts = Counter(label for _, label in data)
    assert set(counts) == set(DEMO_LABELS)
    assert max(counts.values()) - min(counts.values()) <= 1


def test_texts_are_distinct() -> None:
    texts = [text for text, _ in generate_demo_rows(rows=2000, seed=0)]
    assert len(set(texts)) == len(texts)


def test_word_count_bounds_and_no_real_looking_emails() -> None:
    for text, _ in generate_demo_rows(rows=800, seed=0):
        assert 5 <= len(text.split()) <= 40, text
        for word in text.split():
            if "@" in word:
                assert word.rstrip(".,?!").endswith(
                    ("@example.com", "@example.org", "@example.net")
                )


def test_default_rows_is_800() -> None:
    assert len(generate_demo_rows()) == 800


def test_too_few_rows_is_refused() -> None:
    with pytest.raises(ConfigError):
        generate_demo_rows(rows=7)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_bad_test_fraction_is_refused(tmp_path: Path, fraction: float) -> None:
    with pytest.raises(ConfigError):
        write_demo_dataset(tmp_path, rows=40, test_fraction=fraction)


def test_written_csv_reads_back(tmp_path: Path) -> None:
    directory = tmp_path / "nested" / "demo"
    train_path, test_path = write_demo_dataset(directory, rows=800, seed=0, test_fraction=0.2)
    assert train_path == directory / "support_train.csv"
    assert test_path == directory / "support_test.csv"
    train = pd.read_csv(train_path, encoding="utf-8")
    test = pd.read_csv(test_path, encoding="utf-8")
    assert list(train.columns) == ["text", "label"]
    assert list(test.columns) == ["text", "label"]
    assert len(train) == 640
    assert len(test) == 160
    assert set(train["text"]).isdisjoint(test["text"])
    assert set(train["label"]) == set(DEMO_LABELS)
    assert set(test["label"]) == set(DEMO_LABELS)
    assert Counter(test["label"]) == dict.fromkeys(DEMO_LABELS, 40)
    expected = generate_demo_rows(rows=800, seed=0)
    read_back = list(zip(train["text"], train["label"], strict=True))
    read_back += list(zip(test["text"], test["label"], strict=True))
    assert sorted(read_back) == sorted(expected)
    assert any("," in text for text, _ in expected)
    assert sorted(p.name for p in directory.iterdir()) == ["support_test.csv", "support_train.csv"]


def test_small_data_set_keeps_every_class_in_both_files(tmp_path: Path) -> None:
    train_path, test_path = write_demo_dataset(tmp_path, rows=8, seed=5, test_fraction=0.1)
    train = pd.read_csv(train_path)
    test = pd.read_csv(test_path)
    assert len(train) + len(test) == 8
    assert set(train["label"]) == set(test["label"]) == set(DEMO_LABELS)


def test_rewrite_is_identical(tmp_path: Path) -> None:
    first = [p.read_bytes() for p in write_demo_dataset(tmp_path, rows=100, seed=4)]
    second = [p.read_bytes() for p in write_demo_dataset(tmp_path, rows=100, seed=4)]
    assert first == second
