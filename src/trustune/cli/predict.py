"""`trustune predict`: labels and probabilities for texts or a file of texts."""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from rich.table import Table

from trustune.cli.common import (
    add_run_argument,
    check_output_path,
    cut_notice,
    cut_texts,
    run_max_chars,
)
from trustune.cli.key_options import (
    add_key_arguments,
    add_public_key_argument,
    key_from_args,
    public_key_from_args,
)
from trustune.cli.render import BarProgress, err_console, out_console
from trustune.errors import ConfigError

__all__ = ["add_parser"]

_OUTPUT_FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".tsv": "tsv"}


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "predict",
        help="predict labels for texts",
        description="Predict labels and class probabilities, for texts given with --text or for a "
        "whole file (--input FILE --output FILE: batched and streamed, with progress).",
    )
    add_run_argument(p)
    p.add_argument(
        "--text",
        action="append",
        default=[],
        metavar="TEXT",
        help="a text to classify (repeatable)",
    )
    p.add_argument("--input", metavar="FILE", help="texts to classify: CSV, TSV, JSONL or Parquet")
    p.add_argument(
        "--output", metavar="FILE", help="where to write predictions: .jsonl, .csv or .tsv"
    )
    p.add_argument(
        "--text-column", help="column of --input holding the text (detected when unambiguous)"
    )
    p.add_argument(
        "--skip-bad-rows",
        action="store_true",
        help="drop empty texts of --input instead of failing",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=64,
        metavar="N",
        help="texts per forward pass (default 64)",
    )
    p.add_argument("--json", action="store_true", help="print predictions as JSON")
    add_key_arguments(p, purpose="to open an encrypted run")
    add_public_key_argument(p, required=False)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if bool(args.input) == bool(args.text):
        raise ConfigError(
            "give texts with --text TEXT, or a file with --input FILE --output FILE (not both)"
        )
    if args.input and not args.output:
        raise ConfigError("--input needs --output FILE (.jsonl, .csv or .tsv)")
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size: {args.batch_size} is not allowed, it must be > 0")
    fmt = None
    if args.input:
        fmt = _OUTPUT_FORMATS.get(Path(args.output).suffix.lower())
        if fmt is None:
            raise ConfigError(
                f"--output {args.output}: unknown format; use one of {sorted(_OUTPUT_FORMATS)}"
            )
        _check_paths(Path(args.input), Path(args.output))
    import trustune

    model = trustune.load(
        args.run, key=key_from_args(args, required=False), public_key=public_key_from_args(args)
    )
    if args.text:
        texts, cut = cut_texts(args.text, max_chars := run_max_chars(model))
        if cut:
            err_console.print(cut_notice(cut, max_chars))
        predictions = model.predict(texts, batch_size=args.batch_size)
        if args.json:
            out_console.print_json(
                json.dumps(
                    [{"text": t, **p.to_dict()} for t, p in zip(texts, predictions, strict=True)]
                )
            )
            return 0
        table = Table(show_header=True)
        for column in ("text", "label", "score", "probabilities"):
            table.add_column(column)
        for text, p in zip(texts, predictions, strict=True):
            probs = ", ".join(f"{k} {v:.3f}" for k, v in p.probabilities.items())
            table.add_row(
                text if len(text) <= 60 else text[:57] + "...",
                str(p.label),
                f"{p.score:.3f}",
                probs,
            )
        out_console.print(table)
        return 0
    assert fmt is not None
    _predict_file(model, args, fmt)
    return 0


def _check_paths(source: Path, output: Path) -> None:
    """Before the model loads: the output is not the input, and it can be written."""
    same = source.resolve() == output.resolve()
    if not same and source.exists() and output.exists():
        same = os.path.samefile(source, output)
    if same:
        raise ConfigError(
            f"--output {output} is the --input file; write the predictions to another file"
        )
    check_output_path(output, flag="--output", folder=False)


def _predict_file(model: Any, args: argparse.Namespace, fmt: str) -> None:
    from trustune.data import load_texts

    max_chars = run_max_chars(model)
    texts, frame = load_texts(
        args.input, text_column=args.text_column, skip_bad_rows=args.skip_bad_rows,
        max_chars=max_chars,
    )  # fmt: skip
    if frame.attrs.get("chars_cut"):
        err_console.print(cut_notice(frame.attrs["chars_cut"], max_chars))
    progress = BarProgress(enabled=not args.quiet)
    progress.start("predict", total=len(texts))
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=output.parent, prefix=f".{output.name}.", suffix=".tmp")
    records = frame.to_dict(orient="records")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            writer = _writer(f, fmt, list(frame.columns), model.labels)
            stream = model.predict_stream(_counted(texts, progress), batch_size=args.batch_size)
            for record, prediction in zip(records, stream, strict=True):
                writer(record, prediction)
        os.replace(tmp, output)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    finally:
        progress.end("predict")
    out_console.print(f"wrote {len(texts)} predictions to {output}")


def _counted(texts: list[str], progress: BarProgress) -> Iterator[str]:
    for i, text in enumerate(texts, 1):
        yield text
        if i % 64 == 0 or i == len(texts):
            progress.advance("predict", 64 if i % 64 == 0 else i % 64)


def _writer(f: TextIO, fmt: str, columns: list[str], labels: tuple[Any, ...]) -> Any:
    if fmt == "jsonl":

        def write_json(record: dict[str, Any], p: Any) -> None:
            f.write(json.dumps({**record, **p.to_dict()}, ensure_ascii=False, default=str) + "\n")

        return write_json
    prob_columns = [f"prob_{label}" for label in labels]
    writer = csv.writer(f, delimiter="," if fmt == "csv" else "\t")
    writer.writerow([*columns, "predicted_label", "score", *prob_columns])

    def write_row(record: dict[str, Any], p: Any) -> None:
        writer.writerow(
            [*(record[c] for c in columns), p.label, p.score, *p.probabilities.values()]
        )

    return write_row
