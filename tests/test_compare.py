"""`trustune compare`: a tiny run beside its ONNX child measured in one process, the table's
columns and ratios, recording into the first run (metrics.json, the report's Efficiency
section), the Compression section of a compressed run's report, and the command's bad inputs.
No timing assertions: which run is faster depends on the machine."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("onnxruntime")

from trustune.cli.main import main
from trustune.compress import CompressSettings, compress
from trustune.compress.compare import (
    DEFAULT_REPEATS,
    EFFICIENCY_KEY,
    EfficiencyTable,
    measure_efficiency,
)
from trustune.compress.report import efficiency_section
from trustune.errors import ArtifactError, ConfigError, DataError
from trustune.report import plots

ENV = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}
ENV.pop("TRUSTUNE_KEY_FILE", None)
ENV.pop("TRUSTUNE_KEY", None)
FAST = {"repeats": 2, "latency_samples": 4}  # a table, not a benchmark

ROW_KEYS = {
    "run", "name", "method", "format", "engine", "encrypted", "size_bytes", "parameters",
    "latency_ms_p50", "latency_ms_p95", "throughput_per_s", "metrics", "speedup",
    "throughput_ratio", "size_ratio", "deltas", "delta_points", "repeats",
}  # fmt: skip
TABLE_KEYS = {
    "task", "metric", "data", "rows", "repeats", "latency_samples", "batch_size",
    "throughput_rows", "hardware", "threads", "created",
}  # fmt: skip


def cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trustune.cli.main", *map(str, args)],
        capture_output=True, text=True, env=ENV, timeout=600,
    )  # fmt: skip


@pytest.fixture(scope="module")
def pair(
    tmp_path_factory: pytest.TempPathFactory, tiny_run: Path, demo_files: tuple[Path, Path]
) -> tuple[Path, Path]:
    """A copy of the tiny run (compare records into it) and its ONNX child."""
    folder = tmp_path_factory.mktemp("compare")
    base = folder / "base"
    shutil.copytree(tiny_run, base)
    child = compress(
        base, method="onnx", output=folder / "base-onnx", data=demo_files[1],
        settings=CompressSettings(max_drop=100.0),
    ).path  # fmt: skip
    return base, child


def test_the_table_has_every_column_and_ratios_against_the_first_run(
    pair: tuple[Path, Path], demo_files: tuple[Path, Path]
) -> None:
    base, child = pair
    table = measure_efficiency([base, child], demo_files[1], **FAST)
    assert isinstance(table, EfficiencyTable)
    found = table.to_dict()
    assert set(found) == TABLE_KEYS
    assert found["task"] == "text-classification" and found["metric"] == "accuracy"
    assert found["data"]["rows"] > 0 and found["repeats"] == 2
    assert "model" in found["hardware"] and "cores" in found["hardware"]
    assert found["threads"]["torch"] >= 1 and found["threads"]["onnxruntime"] >= 1
    first, second = found["rows"]
    assert set(first) == set(second) == ROW_KEYS
    assert [first["name"], second["name"]] == ["base", "base-onnx"]
    assert (first["method"], first["format"]) == ("trained", "transformers")
    assert (second["method"], second["format"]) == ("onnx", "onnx")
    assert second["engine"].startswith("onnxruntime")
    for row in (first, second):
        # medians of per-repeat percentiles: p95 >= p50 in every repeat, so in the medians too
        assert row["latency_ms_p50"] > 0 and row["latency_ms_p95"] >= row["latency_ms_p50"]
        assert row["throughput_per_s"] > 0 and row["size_bytes"] > 0
        assert row["parameters"] > 0
        assert 0.0 <= row["metrics"]["accuracy"] <= 1.0
        assert len(row["repeats"]["latency_ms_p50"]) == 2
        assert all(v > 0 for v in row["repeats"]["throughput_per_s"])
    # the first run is the baseline
    assert first["speedup"] == first["throughput_ratio"] == first["size_ratio"] == 1.0
    assert first["delta_points"] == 0.0 and set(first["deltas"].values()) == {0.0}
    assert second["speedup"] == pytest.approx(
        first["latency_ms_p50"] / second["latency_ms_p50"], rel=1e-3
    )
    assert second["throughput_ratio"] == pytest.approx(
        second["throughput_per_s"] / first["throughput_per_s"], rel=1e-3
    )
    assert second["size_ratio"] == pytest.approx(second["size_bytes"] / first["size_bytes"], 1e-3)
    accuracy = second["metrics"]["accuracy"] - first["metrics"]["accuracy"]
    assert second["delta_points"] == pytest.approx(accuracy * 100, abs=1e-3)
    # the ONNX export computes the same function: the metrics agree
    assert abs(second["delta_points"]) < 5


def test_cli_json_records_the_table_into_the_first_run(
    pair: tuple[Path, Path], demo_files: tuple[Path, Path]
) -> None:
    import trustune

    base, child = pair
    result = cli("compare", base, child, "--data", demo_files[1], "--json", "--repeats", "1")
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert set(printed) == TABLE_KEYS and len(printed["rows"]) == 2
    assert set(printed["rows"][1]) == ROW_KEYS
    metrics = json.loads((base / "metrics.json").read_text(encoding="utf-8"))
    assert metrics[EFFICIENCY_KEY]["rows"][1]["run"] == str(child)
    assert metrics["validation"]  # the other records are kept
    report = (base / "report.html").read_text(encoding="utf-8")
    assert 'id="efficiency"' in report
    section = report[report.index('id="efficiency"') :]
    assert "<h2>Efficiency</h2>" in section and "trustune compare" in section
    assert 'alt="throughput against accuracy" src="data:image/png;base64,' in section
    assert report.index('id="validation"') < report.index('id="efficiency"')
    loaded = trustune.load(base)  # the run still loads: records rewritten, hashes updated
    assert loaded.manifest.files and (base / "model" / "README.md").is_file()


def test_the_text_table_and_no_record(
    pair: tuple[Path, Path], demo_files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from rich.console import Console

    from trustune.cli import compare

    base, child = pair
    before = (child / "metrics.json").read_bytes()
    printed = io.StringIO()  # a wide console: the table is not folded
    monkeypatch.setattr(compare, "out_console", Console(file=printed, width=220, markup=False))
    argv = ["compare", child, base, "--data", demo_files[1], "--repeats", "1", "--no-record"]
    assert main([*map(str, argv), "--quiet"]) == 0
    out = " ".join(printed.getvalue().split())  # the caption may wrap on a long CPU name
    assert "base-onnx" in out and "accuracy" in out
    assert "speed-up" in out and "texts/s" in out and "median of 1 repeat(s)" in out
    assert "saved into" not in out
    assert (child / "metrics.json").read_bytes() == before


def test_the_compressed_run_report_has_its_compression_section(pair: tuple[Path, Path]) -> None:
    base, child = pair
    report = (child / "report.html").read_text(encoding="utf-8")
    section = report[report.index('id="compression"') :]
    assert "<h2>Compression</h2>" in section and "Accuracy guard" in section
    assert str(base.resolve()) in section and "onnxruntime" in section
    assert "prediction agreement" in section and "--max-drop 100" in section
    assert 'id="compression"' not in (base / "report.html").read_text(encoding="utf-8")


def test_an_encrypted_run_is_measured_with_its_key(
    pair: tuple[Path, Path], demo_files: tuple[Path, Path], tmp_path: Path
) -> None:
    from trustune.security import encrypt_run, generate_key

    base, _ = pair
    key = generate_key()
    sealed = encrypt_run(base, key=key, output=tmp_path / "sealed")
    table = measure_efficiency([base, sealed], demo_files[1], key=key, **FAST)
    plain, encrypted = table.rows
    assert encrypted.encrypted and not plain.encrypted
    assert encrypted.metrics == plain.metrics
    assert encrypted.size_bytes > 0 and encrypted.parameters == plain.parameters


def test_bad_inputs_are_one_line_errors(
    pair: tuple[Path, Path], demo_files: tuple[Path, Path], regression_run: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    base, child = pair
    data = str(demo_files[1])
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("words,score\nhello there,1\nhow are you,2\n", encoding="utf-8")
    cases = {
        (str(tmp_path), str(base)): "is not a run folder",
        (str(base), str(regression_run)): "is a text-regression run",
        (str(base), str(base / ".")): "is given twice",
    }
    for runs, message in cases.items():
        assert main(["compare", *runs, "--data", data, "--no-record"]) == 2
        [line] = capsys.readouterr().err.strip().splitlines()
        assert message in line and "Traceback" not in line
    assert main(["compare", str(base), "--data", str(wrong), "--no-record", "--quiet"]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert f"--data does not fit {base}" in line
    assert main(["compare", str(base), "--data", data, "--repeats", "0"]) == 2
    assert "--repeats must be a whole number >= 1" in capsys.readouterr().err
    # and through a real process
    result = cli("compare", tmp_path, "--data", data)
    assert result.returncode == 2
    [line] = [x for x in result.stderr.splitlines() if x.strip()]
    assert f"{tmp_path} is not a run folder" in line
    with pytest.raises(DataError, match="is not a file"):
        measure_efficiency([base], tmp_path / "missing.csv")
    with pytest.raises(ArtifactError):
        measure_efficiency([tmp_path], data)
    with pytest.raises(ConfigError, match="one or more run folders"):
        measure_efficiency([], data)
    assert child  # the child is a run: refused only as given above


def test_the_efficiency_section_reads_partial_records() -> None:
    assert efficiency_section({}) is None
    assert efficiency_section({"rows": ["junk", {"name": "a"}]}) is not None
    assert plots.speed_accuracy(None) is None
    assert plots.speed_accuracy([{"name": "a", "throughput_per_s": "fast", "value": 1}]) is None
    uri = plots.speed_accuracy(
        [{"name": "$x_1$", "throughput_per_s": 10.0, "value": 0.9},
         {"name": "_b", "throughput_per_s": 900.0, "value": 0.8}], metric="accuracy",
    )  # fmt: skip
    assert uri is not None and uri.startswith("data:image/png;base64,")


def test_the_cli_default_repeats_is_the_library_default() -> None:
    from trustune.cli import compare

    assert compare.DEFAULT_REPEATS == DEFAULT_REPEATS
    from trustune.compress import report

    assert report.EFFICIENCY_KEY == EFFICIENCY_KEY
