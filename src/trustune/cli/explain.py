"""`trustune explain`: why the model decides: word heat maps, top words per class, faithfulness.

Its flags are the inputs (--text, --text-pair, --data, --output) and, generated from the fields
of :class:`trustune.explain.ExplainSettings`, everything else."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text

from trustune.cli.common import add_run_argument, cut_notice, cut_texts, run_max_chars
from trustune.cli.flags import HelpFormatter, add_settings_flags, settings_values
from trustune.cli.key_options import add_key_arguments, key_from_args
from trustune.cli.render import BarProgress, err_console, out_console
from trustune.errors import ConfigError
from trustune.explain.settings import ExplainSettings

__all__ = ["add_parser"]

_JSONL = (".jsonl", ".ndjson")


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "explain",
        help="explain predictions word by word",
        description="Explain why the model predicts what it does: a signed score per word "
        "(green for the target class, red against). --text explains texts; --data FILE --output "
        "F.jsonl explains a file (JSONL plus one HTML page); --global aggregates the top words of "
        "each class over --data; --evaluate measures how faithful each method is (ERASER "
        "comprehensiveness and sufficiency against random rankings). --global and --evaluate are "
        "saved into the run (explanations.json, manifest, report.html). Runs trained on text "
        "pairs explain the words of both texts.",
        formatter_class=HelpFormatter,
    )
    add_run_argument(p)
    p.add_argument(
        "--text", action="append", default=[], metavar="TEXT", help="a text to explain (repeatable)"
    )
    p.add_argument(
        "--text-pair", action="append", default=[], metavar="TEXT",
        help="for a run trained on text pairs: the second text of each --text, in order "
        "(repeatable); the words of both texts are explained",
    )  # fmt: skip
    p.add_argument(
        "--data",
        metavar="FILE",
        help="texts to explain: CSV, TSV, JSONL or Parquet (labels optional)",
    )
    p.add_argument(
        "--output", metavar="FILE",
        help="write to FILE instead of the terminal; with --data: F.jsonl, plus F.html beside it",
    )  # fmt: skip
    add_settings_flags(p, ExplainSettings)
    add_key_arguments(p, purpose="to open an encrypted run")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=run)


def _check(args: argparse.Namespace, settings: ExplainSettings) -> None:
    if bool(args.text) == bool(args.data):
        raise ConfigError("give texts with --text TEXT, or a file with --data FILE (not both)")
    if args.text_pair and not args.text:
        raise ConfigError("--text-pair is the second text of a --text; give both")
    wants_data = settings.global_importance or settings.evaluate
    if wants_data and not args.data:
        raise ConfigError("--global and --evaluate need --data FILE")
    if args.data and not wants_data and not args.output:
        raise ConfigError("--data needs --output FILE.jsonl (or --global / --evaluate)")
    if args.data and args.output and Path(args.output).suffix.lower() not in _JSONL:
        raise ConfigError(
            f"--output {args.output}: with --data write JSONL, e.g. explanations.jsonl"
        )


def _check_pairs(args: argparse.Namespace, settings: ExplainSettings, classifier: Any) -> None:
    """Second texts exactly when the run reads pairs (one per --text)."""
    args.pairs = bool(classifier.pairs)
    if not args.pairs:
        if args.text_pair or settings.text_pair_column:
            raise ConfigError(
                "this run was trained on single texts; drop --text-pair / --text-pair-column"
            )
        return
    if args.text and len(args.text_pair) != len(args.text):
        raise ConfigError(
            f"this run was trained on text pairs: give one --text-pair per --text "
            f"({len(args.text)} --text, {len(args.text_pair)} --text-pair)"
        )


def run(args: argparse.Namespace) -> int:
    settings = ExplainSettings(**settings_values(args, ExplainSettings))
    _check(args, settings)
    import trustune
    from trustune.explain import ExplainableModel, get_explainer

    if settings.method is not None:
        get_explainer(settings.method)  # an unknown name fails before the model loads
    classifier = trustune.load(args.run, key=key_from_args(args, required=False))
    model = ExplainableModel.from_classifier(classifier)
    args.max_chars = run_max_chars(classifier)
    _check_pairs(args, settings, classifier)
    if args.text:
        _explain_texts(model, args, settings)
    else:
        _explain_data(model, args, settings)
    return 0


def _explain_texts(model: Any, args: argparse.Namespace, settings: ExplainSettings) -> None:
    from trustune.explain import explain_texts
    from trustune.explain.render import render_page, terminal_text

    method = settings.chosen_method
    texts, cut = cut_texts(args.text, args.max_chars)
    pairs, cut_pairs = cut_texts(args.text_pair, args.max_chars)
    if cut or cut_pairs:
        err_console.print(cut_notice(cut + cut_pairs, args.max_chars))
    explanations = explain_texts(
        model, texts, method=method, target=settings.target, options=settings.options(),
        text_pairs=pairs if args.pairs else None,
    )  # fmt: skip
    _warn_completeness(explanations, settings.steps)
    if settings.format == "json":
        _emit(args, json.dumps([e.to_dict() for e in explanations], indent=2, ensure_ascii=False))
    elif settings.format == "html":
        _emit(args, render_page(explanations, title=f"Explanations ({method})"))
    elif args.output:
        _emit(args, "\n\n".join(_plain(e, model.max_length) for e in explanations))
    else:
        for e in explanations:
            out_console.print(
                terminal_text(e, color_system=out_console.color_system), soft_wrap=True
            )
            out_console.print(Text(_meta(e, model.max_length), style="dim"))


def _meta(e: Any, max_length: int) -> str:
    p = e.probabilities
    parts = [f"predicted {e.predicted} ({p[str(e.predicted)]:.3f})"]
    if str(e.target) != str(e.predicted):
        parts.append(f"explaining {e.target} ({p[str(e.target)]:.3f})")
    parts.append(e.method)
    if e.delta is not None:
        too_large = " (too large: see the warning)" if e.completeness_warning else ""
        parts.append(f"completeness error {e.delta:+.2g}{too_large}")
    parts.append("top: " + ", ".join(f"{w} {s:+.3g}" for w, s in e.top_words(3)))
    line = " · ".join(parts)
    if e.truncated:
        line += (
            f"\ntruncated: longer than the model's max length of {max_length} tokens; "
            f"the last {e.dropped_words} word(s) were not seen and not explained"
        )
    return line


def _warn_completeness(explanations: list[Any], steps: int) -> None:
    """One warning line when integrated gradients' scores of some texts do not add up."""
    from trustune.explain.explanation import COMPLETENESS_ATOL, COMPLETENESS_RTOL

    flagged = [e for e in explanations if e.completeness_warning]
    if not flagged:
        return
    worst = max(flagged, key=lambda e: abs(e.delta) if math.isfinite(e.delta) else math.inf)
    err_console.print(
        Text(
            f"warning: the {worst.method} scores of {len(flagged)} of {len(explanations)} "
            f"text(s) do not add up to the probability change they explain (largest completeness "
            f"error {worst.delta:+.3g} for a change of {worst.explained_change:+.3f}; tolerated: "
            f"{COMPLETENESS_RTOL:.0%} of the change + {COMPLETENESS_ATOL:g}), so their word scores "
            f"are approximate. Rerun with --steps {steps * 4}",
            style="yellow",
        )
    )


def _plain(e: Any, max_length: int) -> str:
    from trustune.explain.render import PART_LABELS

    scored = list(zip(e.words, e.scores, e.segments, strict=True))
    lines = []
    for segment in (0, 1) if e.text_pair is not None else (0,):
        words = " ".join(f"{w}[{s:+.3g}]" for w, s, part in scored if part == segment)
        lines.append(f"{PART_LABELS[segment]}: {words}" if e.text_pair is not None else words)
    return "\n".join([*lines, _meta(e, max_length)])


def _emit(args: argparse.Namespace, content: str) -> None:
    if not args.output:
        out_console.print(content, markup=False, highlight=False, soft_wrap=True)
        return
    from trustune.artifact import atomic_write_text

    atomic_write_text(Path(args.output), content if content.endswith("\n") else content + "\n")
    out_console.print(f"wrote {args.output}")


def _read_pairs(args: argparse.Namespace, settings: ExplainSettings) -> tuple[list[str], list[str]]:
    """Both texts of each row of --data, for a run trained on pairs."""
    from trustune.data import load_inputs

    texts, pairs, frame = load_inputs(
        args.data, text_column=settings.text_column, pair_column=settings.text_pair_column,
        pairs=True, skip_bad_rows=settings.skip_bad_rows, max_chars=args.max_chars,
    )  # fmt: skip
    assert pairs is not None
    cut = int(frame.attrs["chars_cut"])
    if cut:
        err_console.print(cut_notice(cut, args.max_chars))
    if settings.max_rows:
        texts, pairs = texts[: settings.max_rows], pairs[: settings.max_rows]
    return texts, pairs


def _read_data(
    model: Any, args: argparse.Namespace, settings: ExplainSettings
) -> tuple[list[str], list[Any] | None]:
    """Texts of --data and their true labels when the file has a label column."""
    from trustune.data import load_texts, read_labeled
    from trustune.data.labels import LabelMap
    from trustune.errors import ColumnError, LabelError

    truths: list[Any] | None = None
    try:
        labeled, _ = read_labeled(
            args.data, text_column=settings.text_column, label_column=settings.label_column,
            skip_bad_rows=settings.skip_bad_rows, max_chars=args.max_chars,
        )  # fmt: skip
        texts, cut = labeled.texts, int(labeled.info["chars_cut"])
        label_map = LabelMap(model.labels)
        # A detected column is taken as true labels only when the model knows all its values.
        try:
            truths = [model.labels[label_map.index_of(v)] for v in labeled.raw_labels]
        except LabelError:
            if settings.label_column:
                raise
    except ColumnError:
        if settings.label_column:
            raise
        texts, frame = load_texts(
            args.data, text_column=settings.text_column, skip_bad_rows=settings.skip_bad_rows,
            max_chars=args.max_chars,
        )  # fmt: skip
        cut = int(frame.attrs["chars_cut"])
    if cut:
        err_console.print(cut_notice(cut, args.max_chars))
    if settings.max_rows:
        texts = texts[: settings.max_rows]
        truths = truths[: settings.max_rows] if truths is not None else None
    return texts, truths


def _explain_data(model: Any, args: argparse.Namespace, settings: ExplainSettings) -> None:
    from trustune.data import file_sha256
    from trustune.explain import explain_texts
    from trustune.explain.faithfulness import evaluate_faithfulness
    from trustune.explain.global_importance import aggregate_importance
    from trustune.explain.store import pick_examples, record_explanations

    pairs: list[str] | None = None
    if args.pairs:
        (texts, pairs), truths = _read_pairs(args, settings), None
    else:
        texts, truths = _read_data(model, args, settings)
    method = settings.chosen_method
    options = settings.options()
    progress = BarProgress(enabled=not args.quiet)
    info = {"path": str(args.data), "sha256": file_sha256(args.data), "rows": len(texts)}
    explanations = importance = faithfulness = None
    if args.output or settings.global_importance:
        explanations = explain_texts(
            model, texts, method=method, target=settings.target, options=options,
            progress=progress, text_pairs=pairs,
        )  # fmt: skip
        _warn_completeness(explanations, settings.steps)
        truncated = sum(e.truncated for e in explanations)
        if truncated:
            out_console.print(
                f"{truncated} text(s) were longer than the model's max length of "
                f"{model.max_length} tokens and were truncated (their last words are not explained)"
            )
    if settings.global_importance:
        assert explanations is not None
        importance = aggregate_importance(
            explanations, labels=model.labels, top_k=settings.top_k, min_count=settings.min_count
        )
    if settings.evaluate:
        faithfulness = evaluate_faithfulness(
            model, texts, methods=[settings.method] if settings.method else None,
            sample=settings.sample, seed=settings.seed, options=options, progress=progress,
            text_pairs=pairs,
        )  # fmt: skip
    if args.output:
        assert explanations is not None
        _write_batch(Path(args.output), explanations, truths, importance, faithfulness, method)
    if importance is not None or faithfulness is not None:
        examples = None
        if explanations is not None and settings.target is None:
            examples = pick_examples(explanations, truths)
        path = record_explanations(
            Path(args.run), data=info, importance=importance, examples=examples,
            faithfulness=faithfulness,
        )  # fmt: skip
        explained = "score" if model.explains == "output" else "probability"
        _show_results(settings, importance, faithfulness, explained=explained)
        if settings.format != "json":
            out_console.print(
                f"saved into {path}, the manifest and {Path(args.run) / 'report.html'}"
            )


def _write_batch(
    output: Path, explanations: list[Any], truths: list[Any] | None,
    importance: Any, faithfulness: Any, method: str,
) -> None:  # fmt: skip
    from trustune.artifact import atomic_write_text
    from trustune.explain.render import render_page

    lines = []
    for row, e in enumerate(explanations, 1):
        record = {"row": row, **e.to_dict()}
        if truths is not None:
            record["true_label"] = truths[row - 1]
        lines.append(json.dumps(record, ensure_ascii=False))
    atomic_write_text(output, "\n".join(lines) + "\n")
    page = output.with_suffix(".html")
    atomic_write_text(
        page,
        render_page(
            explanations, title=f"Explanations ({method})", true_labels=truths,
            importance=importance, faithfulness=faithfulness,
        ),
    )  # fmt: skip
    out_console.print(f"wrote {len(explanations)} explanations to {output} and {page}")


def _show_results(
    settings: ExplainSettings, importance: Any, faithfulness: Any, *, explained: str
) -> None:
    if settings.format == "json":
        result = {}
        if importance is not None:
            result["global"] = importance.to_dict()
        if faithfulness is not None:
            result["faithfulness"] = faithfulness.to_dict()
        out_console.print_json(json.dumps(result))
        return
    if importance is not None:
        for entry in importance.classes:
            table = Table(
                title=f"top words of {entry.label} ({entry.texts} texts, {importance.method})"
            )
            for column in ("word", "mean attribution", "count", "frequency"):
                table.add_column(column, justify="left" if column == "word" else "right")
            for w in entry.words:
                table.add_row(
                    w.word, f"{w.mean_attribution:+.4f}", str(w.count), f"{w.frequency:.0%}"
                )
            out_console.print(table)
    if faithfulness is not None:
        from trustune.explain.faithfulness import RANDOM

        random = faithfulness.get(RANDOM).comprehensiveness
        # Short headers, explained in the caption, so the table fits 80 columns uncut.
        table = Table(
            title=f"faithfulness on {faithfulness.texts} texts (AOPC over top 1-50% words)",
            caption=f"compr.: comprehensiveness, the {explained} lost when a method's top words "
            "are deleted (higher is better); suff.: sufficiency, lost when only they are kept "
            "(lower is better); × random: compr. over that of random rankings",
            caption_justify="left",
        )
        table.add_column("method", no_wrap=True)
        for column in ("compr. ↑", "× random", "suff. ↓", "s / text"):
            table.add_column(column, justify="right", no_wrap=True)
        for m in faithfulness.methods:
            ratio = (
                "" if m.method == RANDOM or random <= 0 else f"{m.comprehensiveness / random:.2f}"
            )
            seconds = "" if m.seconds_per_text is None else f"{m.seconds_per_text:.3f}"
            table.add_row(
                m.method, f"{m.comprehensiveness:.4f}", ratio, f"{m.sufficiency:.4f}", seconds
            )
        out_console.print(table)
