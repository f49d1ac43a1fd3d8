"""The report's "Compression" section (a run made by ``trustune compress``: its lineage and what
the accuracy guard measured) and its "Efficiency" section (the table ``trustune compare`` wrote
into ``metrics.json``, with a speed/accuracy plot). Registered into the report's section
registry (:mod:`trustune.report.sections`); both render from the records alone, so importing
this module imports no torch."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from markupsafe import Markup, escape

from trustune.manifest import CompressionRecord
from trustune.report.plots import speed_accuracy
from trustune.report.sections import SectionInput, register_section
from trustune.values import finite
from trustune.values import mapping as as_mapping

__all__ = ["compression_section", "efficiency_section"]

EFFICIENCY_KEY = "efficiency"  # = trustune.compress.compare.EFFICIENCY_KEY (no torch import here)
_SETTING_CHARS = 120


def _size(n_bytes: Any) -> str:
    """A byte count for people: 695.2 MB, 12.0 kB, 512 B (powers of 1000)."""
    number = finite(n_bytes)
    if number is None:
        return "—"
    for unit in ("B", "kB", "MB"):
        if number < 1000:
            return f"{number:.0f} B" if unit == "B" else f"{number:.1f} {unit}"
        number /= 1000
    return f"{number:.1f} GB"


def _num(value: Any, spec: str, suffix: str = "") -> str:
    number = finite(value)
    return "—" if number is None else f"{number:{spec}}{suffix}"


def _count(value: Any) -> str:
    number = finite(value)
    return "—" if number is None else f"{number:,.0f}"


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= _SETTING_CHARS else text[: _SETTING_CHARS - 1] + "…"


def _row(name: str, value: Any) -> str:
    return f"<tr><th>{escape(name)}</th><td>{escape(_cell(value))}</td></tr>"


# -- Compression: a compressed run's own lineage and guard ----------------------------------


def _guard(guard: Mapping[str, Any]) -> str:
    metric = str(guard.get("metric") or "main metric")
    drop, limit = finite(guard.get("drop_points")), finite(guard.get("max_drop"))
    verdict = ""
    if drop is not None and limit is not None:
        kept = " — kept with --force" if guard.get("forced") else ""
        within = "within" if drop <= limit else "beyond"
        verdict = f" ({within} --max-drop {limit:g}{kept})"
    rows = [
        _row(metric, f"{_num(guard.get('parent'), '.4f')} (parent) → "
             f"{_num(guard.get('compressed'), '.4f')} (compressed)"),
        _row("drop", f"{_num(drop, '+.2f', ' points')}{verdict}"),
    ]  # fmt: skip
    if "prediction_agreement" in guard:
        rows.append(_row("prediction agreement", _num(guard.get("prediction_agreement"), ".2%")))
    rows.append(
        _row(
            "output difference (max / mean)",
            f"{_num(guard.get('max_abs_output_diff'), '.3g')} / "
            f"{_num(guard.get('mean_abs_output_diff'), '.3g')}",
        )
    )
    data = f"{guard.get('data')}" + (f" ({guard['rows']} rows)" if "rows" in guard else "")
    rows.append(_row("measured on", data))
    return f"<h3>Accuracy guard</h3><table>{''.join(rows)}</table>"


def _candidates(candidates: Any) -> str:
    rows = [as_mapping(c) for c in candidates or () if as_mapping(c)]
    if not rows:
        return ""
    body = "".join(
        f"<tr><td>{escape(_cell(r.get('method')))}</td><td>{escape(_cell(r.get('status')))}</td>"
        f"<td>{escape(_cell(r.get('summary', '')))}</td></tr>"
        for r in rows
    )
    return (
        "<h3>Candidates tried</h3><table><tr><th>method</th><th>status</th><th>figures</th></tr>"
        f"{body}</table>"
    )


def compression_section(record: CompressionRecord) -> Markup:
    """Where a compressed run came from, how its model is stored and what the guard measured."""
    parent = as_mapping(record.parent)
    lineage = [
        _row("parent run", parent.get("run")),
        *([_row("parent's method", parent["method"])] if parent.get("method") else []),
        _row("method", record.method),
        _row("engine", record.engine),
        _row("format", record.format),
        *([_row("load transform", record.load_transform)] if record.load_transform else []),
        *([_row("parent manifest SHA-256", parent["manifest_sha256"])]
          if parent.get("manifest_sha256") else []),
    ]  # fmt: skip
    settings = [_row(k, v) for k, v in sorted(as_mapping(record.settings).items())]
    hardware = as_mapping(record.hardware)
    parts = [
        "<p>This run was made from another by <code>trustune compress</code>; it loads, "
        "predicts and serves as any run.</p>",
        f"<table>{''.join(lineage)}</table>",
    ]
    if record.guard:
        parts.append(_guard(as_mapping(record.guard)))
    if settings:
        parts.append(f"<h3>Settings</h3><table>{''.join(settings)}</table>")
    parts.append(_candidates(record.candidates))
    if hardware:
        flags = [k for k, v in hardware.items() if v is True]
        parts.append(
            f"<p>Compressed on {escape(_cell(hardware.get('model')))} "
            f"({escape(_cell(hardware.get('cores')))} cores; "
            f"{escape(', '.join(flags) or 'no AVX2/AVX-512/AMX flags')}).</p>"
        )
    notes = "".join(f'<p class="note">{escape(n)}</p>' for n in record.notes)
    return Markup("".join(parts) + notes)


def _compression(given: SectionInput) -> Markup | None:
    record = given.manifest.compression
    return None if record is None else compression_section(record)


# -- Efficiency: the trustune compare table recorded into this run --------------------------


def _ratio(value: Any, spec: str = ".2f") -> str:
    return _num(value, spec, "×")


def efficiency_section(table: Mapping[str, Any]) -> Markup | None:
    """The compare table: size, parameters, latency, throughput, main metric and ratios."""
    rows = [as_mapping(r) for r in table.get("rows") or () if as_mapping(r)]
    if not rows:
        return None
    metric = str(table.get("metric") or "metric")
    head = (
        "<tr><th>run</th><th>method</th><th>engine</th><th>size</th><th>parameters</th>"
        "<th>latency p50</th><th>latency p95</th><th>throughput</th>"
        f"<th>{escape(metric)}</th><th>Δ points</th><th>speed-up</th><th>size ratio</th></tr>"
    )
    body = []
    points = []
    for row in rows:
        value = as_mapping(row.get("metrics")).get(metric)
        points.append(
            {"name": row.get("name"), "throughput_per_s": row.get("throughput_per_s"),
             "value": value}
        )  # fmt: skip
        body.append(
            f"<tr><td>{escape(_cell(row.get('name')))}</td><td>{escape(_cell(row.get('method')))}"
            f"</td><td>{escape(_cell(row.get('engine')))} ({escape(_cell(row.get('format')))})"
            f"</td><td>{_size(row.get('size_bytes'))}</td><td>{_count(row.get('parameters'))}"
            f"</td><td>{_num(row.get('latency_ms_p50'), '.2f', ' ms')}</td>"
            f"<td>{_num(row.get('latency_ms_p95'), '.2f', ' ms')}</td>"
            f"<td>{_num(row.get('throughput_per_s'), '.1f', ' /s')}</td>"
            f"<td>{_num(value, '.4f')}</td><td>{_num(row.get('delta_points'), '+.2f')}</td>"
            f"<td>{_ratio(row.get('speedup'))}</td><td>{_ratio(row.get('size_ratio'))}</td></tr>"
        )
    data, hardware, threads = (as_mapping(table.get(k)) for k in ("data", "hardware", "threads"))
    thread_text = ", ".join(
        f"{escape(k)} {escape(_cell(v))}" for k, v in threads.items() if not k.endswith("version")
    )
    parts = [
        f"<p>{len(rows)} runs measured by <code>trustune compare</code> on "
        f"{escape(_cell(data.get('path')))} ({escape(_cell(data.get('rows')))} rows) on "
        f"{escape(_cell(hardware.get('model')))} ({escape(_cell(hardware.get('cores')))} cores; "
        f"threads: {thread_text or '—'}), {escape(_cell(table.get('created')))}. Latency at "
        f"batch 1 ({escape(_cell(table.get('latency_samples')))} texts per repeat), throughput at "
        f"batch {escape(_cell(table.get('batch_size')))} over "
        f"{escape(_cell(table.get('throughput_rows')))} rows; the median of "
        f"{escape(_cell(table.get('repeats')))} repeat(s), the runs measured in turn within each. "
        "Δ points, speed-up (latency p50) and size ratio are against the first run.</p>",
        f"<table>{head}{''.join(body)}</table>",
    ]
    image = speed_accuracy(points, metric=metric)
    if image:
        parts.append(f'<img alt="throughput against {escape(metric)}" src="{image}">')
    return Markup("".join(parts))


def _efficiency(given: SectionInput) -> Markup | None:
    table = as_mapping(given.metrics.get(EFFICIENCY_KEY))
    return efficiency_section(table) if table else None


register_section("compression", title="Compression", order=40, builder=_compression)
register_section("efficiency", title="Efficiency", order=50, builder=_efficiency)
