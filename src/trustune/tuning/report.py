"""The report's "Hyperparameter search" section of a run that won a ``trustune tune`` study:
the trials (table), the optimisation history, the parameter importances and, for a private
study, what the whole search cost in privacy. Registered into the report's section registry
(:mod:`trustune.report.sections`); it reads the ``tune.json`` the study left in the run."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from markupsafe import Markup, escape

from trustune.report.plots import importance_bars, optimization_history
from trustune.report.sections import SectionInput, register_section

__all__ = ["report_section"]

SUMMARY_FILE = "tune.json"


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _privacy(cost: Mapping[str, Any]) -> str:
    basic, composed = cost["basic"], cost["composed"]
    return (
        "<h3>Privacy cost of the search</h3>"
        f"<p>{cost['trials']} trials trained on the private data, each to its own ε "
        f"(at most {max(cost['per_trial_epsilon']):.3g}). Choosing the best of them used all of "
        "their results, so the model released from this study is "
        f"<strong>(ε = {cost['epsilon']:.3g}, δ = {composed['delta']:.3g})</strong>-DP, not "
        "the single run's ε: the smaller of basic composition "
        f"(ε = {basic['epsilon']:.3g}, δ = {basic['delta']:.3g}) and the "
        f"{escape(composed['accountant'])} accountant over every trial's steps "
        f"(ε = {composed['epsilon']:.3g} at δ = {composed['delta']:.3g}). See docs/tuning.md.</p>"
    )


def report_section(summary: Mapping[str, Any]) -> Markup:
    trials = summary.get("trials") or []
    best = summary.get("best") or {}
    keys = list(summary.get("space") or {})
    metric = str(best.get("metric") or next(
        (t.get("metric") for t in trials if t.get("metric")), "objective"))  # fmt: skip
    head = "".join(f"<th>{escape(k.split('.', 1)[-1])}</th>" for k in keys)
    rows = []
    for t in trials:
        mark = ' class="best"' if t.get("number") == best.get("number") else ""
        cells = "".join(f"<td>{escape(_cell(t['params'].get(k)))}</td>" for k in keys)
        eps = f"<td>{escape(_cell(t.get('epsilon')))}</td>" if summary.get("privacy_cost") else ""
        rows.append(
            f"<tr{mark}><td>{t['number']}</td><td>{escape(t['state'])}</td>{cells}"
            f"<td>{escape(_cell(t.get('metric_value')))}</td>{eps}"
            f"<td>{escape(_cell(t.get('wall_time_s')))}</td></tr>"
        )
    eps_head = "<th>ε</th>" if summary.get("privacy_cost") else ""
    counts = summary.get("counts") or {}
    parts = [
        f"<p>This run is trial {escape(_cell(best.get('number')))} of a study of "
        f"{len(trials)} trials ({counts.get('complete', 0)} finished, "
        f"{counts.get('pruned', 0)} pruned, {counts.get('fail', 0)} failed; "
        f"{escape(str((summary.get('settings') or {}).get('pruner')))} pruning, TPE sampler), "
        f"chosen by validation {escape(metric)}; the search took "
        f"{float(summary.get('wall_time_s') or 0):.0f} s of training.</p>",
        f"<table><tr><th>trial</th><th>state</th>{head}<th>{escape(metric)}</th>{eps_head}"
        f"<th>time (s)</th></tr>{''.join(rows)}</table>",
    ]
    history = optimization_history(trials, metric=metric)
    if history:
        parts.append(f'<img alt="optimisation history" src="{history}">')
    bars = importance_bars(summary.get("importances"))
    if bars:
        parts.append(f'<img alt="parameter importance" src="{bars}">')
    if summary.get("privacy_cost"):
        parts.append(_privacy(summary["privacy_cost"]))
    return Markup("".join(parts))


def _section(given: SectionInput) -> Markup | None:
    if given.run_dir is None or not (given.run_dir / SUMMARY_FILE).is_file():
        return None
    summary = json.loads((given.run_dir / SUMMARY_FILE).read_text(encoding="utf-8"))
    return report_section(summary)


register_section(
    "tuning", title="Hyperparameter search", order=90, builder=_section, files=(SUMMARY_FILE,)
)
