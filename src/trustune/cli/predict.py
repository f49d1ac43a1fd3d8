"""`trustune predict`: what a run predicts (a label and probabilities, or a score) for texts,
text pairs, or a file of them.

Every output format holds the same flat records: the input's columns unchanged and in order,
then the fields of :func:`prediction_fields` (``prediction``; for a classifier also
``prediction_score`` and one ``prediction_prob_<label>`` per class). An input column with one of
those names is refused.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from rich.table import Table

from trustune.artifact import atomic_file
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
from trustune.errors import ColumnError, ConfigError
from trustune.messages import shown

if TYPE_CHECKING:
    import pandas as pd

    from trustune.classifier import Prediction
    from trustune.loaded import LoadedRun
    from trustune.regressor import ScorePrediction

__all__ = ["add_parser", "prediction_fields"]

_OUTPUT_FORMATS = {
    ".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".tsv": "tsv", ".parquet": "parquet",
}  # fmt: skip


# a prediction's to_dict() keys -> output field names; other keys become prediction_<key>
_FIELD_NAMES = {"label": "prediction", "value": "prediction", "probabilities": "prediction_prob"}


def prediction_fields(prediction: Prediction | ScorePrediction) -> dict[str, Any]:
    """The fields predict adds for one input, the same in every output format and in --json:
    the label or value as ``prediction``, then the task's other fields, flattened."""
    fields: dict[str, Any] = {}
    for key, value in prediction.to_dict().items():
        name = _FIELD_NAMES.get(key, f"prediction_{key}")
        if isinstance(value, dict):
            fields.update({f"{name}_{sub}": v for sub, v in value.items()})
        else:
            fields[name] = value
    return fields


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "predict",
        help="predict labels or scores for texts",
        description="Predict what the run was trained to predict (a label and class "
        "probabilities, or a score) for texts given with --text (and --text-pair for runs "
        "trained on text pairs) or for a whole file (--input FILE --output FILE: batched and "
        "streamed, with progress).",
    )
    add_run_argument(p)
    p.add_argument(
        "--text",
        action="append",
        default=[],
        metavar="TEXT",
        help="a text to predict (repeatable)",
    )
    p.add_argument(
        "--text-pair",
        action="append",
        default=[],
        metavar="TEXT",
        help="the second text of a pair, for runs trained on text pairs (repeatable: one per "
        "--text, in the same order)",
    )
    p.add_argument("--input", metavar="FILE", help="texts to predict: CSV, TSV, JSONL or Parquet")
    p.add_argument(
        "--output",
        metavar="FILE",
        help="where to write predictions: .jsonl, .csv, .tsv or .parquet (the input's columns, "
        "then prediction; for a classifier also prediction_score and prediction_prob_<label> "
        "per class)",
    )
    p.add_argument(
        "--text-column", help="column of --input holding the text (detected when unambiguous)"
    )
    p.add_argument(
        "--text-pair-column",
        help="column of --input holding the second text, for runs trained on text pairs "
        "(detected for known pairs of names such as sentence1/sentence2)",
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
        raise ConfigError("--input needs --output FILE (.jsonl, .csv, .tsv or .parquet)")
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size: {args.batch_size} is not allowed, it must be > 0")
    if args.input and args.text_pair:
        raise ConfigError(
            "--text-pair goes with --text; with --input the second texts are a column of the "
            "file (--text-pair-column)"
        )
    if args.text and args.text_pair_column:
        raise ConfigError(
            "--text-pair-column names a column of --input; with --text give --text-pair"
        )
    if args.text_pair and len(args.text_pair) != len(args.text):
        raise ConfigError(
            f"{len(args.text)} --text but {len(args.text_pair)} --text-pair; give one --text-pair "
            "per --text"
        )
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
    if model.task.name == "causal-lm":
        raise ConfigError(f"{args.run} is a causal-lm run: use `trustune generate` or `chat`")
    _check_pair_arguments(model, args)
    if args.text:
        _predict_texts(model, args)
        return 0
    assert fmt is not None
    _predict_file(model, args, fmt)
    return 0


def _check_pair_arguments(model: LoadedRun, args: argparse.Namespace) -> None:
    """A pair run needs the second texts; a single-text run refuses them."""
    if model.pairs and args.text and not args.text_pair:
        raise ConfigError(
            f"{args.run} was trained on text pairs ({shown(str(model.manifest.text_column))}"
            f" and {shown(str(model.manifest.text_pair_column))}); give the second text "
            "of each --text with --text-pair TEXT"
        )
    if not model.pairs:
        for flag, given in (
            ("--text-pair", args.text_pair),
            ("--text-pair-column", args.text_pair_column),
        ):
            if given:
                raise ConfigError(f"{args.run} was trained on single texts; drop {flag}")


def _predict_texts(model: LoadedRun, args: argparse.Namespace) -> None:
    max_chars = run_max_chars(model)
    texts, cut = cut_texts(args.text, max_chars)
    pairs, pairs_cut = cut_texts(args.text_pair, max_chars) if model.pairs else (None, 0)
    if cut + pairs_cut:
        err_console.print(cut_notice(cut + pairs_cut, max_chars))
    predictions = model.predict(texts, pairs, batch_size=args.batch_size)
    inputs = [
        {"text": t} if pairs is None else {"text": t, "text_pair": pairs[i]}
        for i, t in enumerate(texts)
    ]
    if args.json:
        out_console.print_json(
            json.dumps(
                [{**i, **prediction_fields(p)} for i, p in zip(inputs, predictions, strict=True)]
            )
        )
        return
    table = Table(show_header=True)
    keys = list(predictions[0].to_dict())  # the first is the label or value
    for column in [*(c.replace("_", " ") for c in inputs[0]), "prediction", *keys[1:]]:
        table.add_column(column)
    for given, p in zip(inputs, predictions, strict=True):
        table.add_row(
            *(t if len(t) <= 60 else t[:57] + "..." for t in given.values()),
            *(_cell(v) for v in p.to_dict().values()),
        )
    out_console.print(table)


def _cell(value: Any) -> str:
    """One predicted field in the terminal table (probabilities as ``label p, ...``)."""
    if isinstance(value, dict):
        return ", ".join(f"{k} {_cell(v)}" for k, v in value.items())
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


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


def _predict_file(model: LoadedRun, args: argparse.Namespace, fmt: str) -> None:
    from trustune.data import load_inputs

    max_chars = run_max_chars(model)
    texts, pairs, frame = load_inputs(
        args.input, text_column=args.text_column, pair_column=args.text_pair_column,
        pairs=model.pairs, skip_bad_rows=args.skip_bad_rows, max_chars=max_chars,
    )  # fmt: skip
    if frame.attrs.get("chars_cut"):
        err_console.print(cut_notice(frame.attrs["chars_cut"], max_chars))
    # the field names come from one real prediction, so they are those every row gets
    first = model.predict(texts[:1], None if pairs is None else pairs[:1]) if texts else []
    fields = list(prediction_fields(first[0])) if first else []
    _check_column_names(list(frame.columns), fields)
    progress = BarProgress(enabled=not args.quiet)
    progress.start("predict", total=len(texts))
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_file(output) as tmp:
            stream = model.predict_stream(
                _counted(texts, progress), pairs, batch_size=args.batch_size
            )
            rows = (prediction_fields(p) for p in stream)
            if fmt == "parquet":
                _write_parquet(tmp, frame, fields, rows)
            else:
                records: list[dict[Any, Any]] = frame.to_dict(orient="records")
                with open(tmp, "w", encoding="utf-8", newline="") as f:
                    write = _writer(f, fmt, [*frame.columns, *fields])
                    for record, predicted in zip(records, rows, strict=True):
                        write({**record, **predicted})
    finally:
        progress.end("predict")
    out_console.print(f"wrote {len(texts)} predictions to {output}", soft_wrap=True)


def _check_column_names(columns: Sequence[Any], fields: Sequence[str]) -> None:
    """An input column named like a prediction field would be overwritten or duplicated."""
    for column in columns:
        if str(column) in fields:
            raise ColumnError(
                f"--input has a column {shown(str(column))}, a name predict writes its results "
                f"under ({', '.join(fields[:3])}{', ...' if len(fields) > 3 else ''}); rename "
                "that column in the input file and run again"
            )


def _write_parquet(
    path: Path, frame: pd.DataFrame, fields: Sequence[str], rows: Iterator[dict[str, Any]]
) -> None:
    """The input frame (its column types kept) with the prediction fields appended."""
    import pandas as pd

    predicted = pd.DataFrame.from_records(list(rows), columns=list(fields))
    out = pd.concat([frame.reset_index(drop=True), predicted], axis=1)
    out.to_parquet(path, index=False)
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _counted(texts: list[str], progress: BarProgress) -> Iterator[str]:
    for i, text in enumerate(texts, 1):
        yield text
        if i % 64 == 0 or i == len(texts):
            progress.advance("predict", 64 if i % 64 == 0 else i % 64)


def _writer(f: TextIO, fmt: str, columns: list[Any]) -> Any:
    """Write one flat record (input columns, then prediction fields) per line or row."""
    if fmt == "jsonl":

        def write_json(record: dict[str, Any]) -> None:
            f.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")

        return write_json
    writer = csv.writer(f, delimiter="," if fmt == "csv" else "\t")
    writer.writerow(columns)

    def write_row(record: dict[str, Any]) -> None:
        writer.writerow([record[c] for c in columns])

    return write_row
