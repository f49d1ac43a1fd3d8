"""The report's "Privacy" section: the DP guarantee, PII redaction and the membership audit.

Registered into the report's section registry (:mod:`trustune.report.sections`), which imports
this module whenever it builds a report; it reads the saved audit itself, so the records of a
run never import the audit (which writes them).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from markupsafe import Markup, escape

from trustune.manifest import Manifest, PrivacyRecord
from trustune.report.sections import SectionInput, register_section

__all__ = ["AUDIT_FILE", "read_audit", "report_section"]

# The membership audit of a run, as trustune.privacy.audit saves it.
AUDIT_FILE = "privacy_audit.json"


def read_audit(run_dir: Path) -> dict[str, Any] | None:
    """The run's saved membership audit, if any."""
    path = Path(run_dir) / AUDIT_FILE
    if not path.is_file():
        return None
    result: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return result


def _row(name: str, value: Any) -> str:
    return f"<tr><th>{escape(name)}</th><td>{escape(value)}</td></tr>"


def _guarantee(privacy: PrivacyRecord) -> str:
    if not privacy.dp:
        return "<p>Trained without differential privacy.</p>"
    rows = [
        _row("ε (spent)", f"{privacy.epsilon:.3f} (target {privacy.target_epsilon:g})"),
        _row("δ", f"{privacy.delta:.3g} ({privacy.delta_rule})"),
        _row("accountant", privacy.accountant),
        _row("noise multiplier σ", f"{privacy.noise_multiplier:.4f}"),
        _row("clipping norm C (per example)", f"{privacy.max_grad_norm:g}"),
        _row("sampling", f"Poisson, rate {privacy.sample_rate:.4g} "
             f"(~{privacy.logical_batch_size} examples per step)"),
        _row("steps", f"{privacy.steps} of {privacy.planned_steps} planned"),
        _row("frozen", f"{len(privacy.frozen)} embedding tensors"),
    ]  # fmt: skip
    return (
        "<p>Trained with DP-SGD: each example's gradient clipped to norm C, Gaussian noise of "
        "standard deviation σ·C added to every step. For any one training row, whether it was "
        f"in the data changes the probability of any outcome by at most a factor e<sup>ε</sup> "
        f"(plus δ).</p><table>{''.join(rows)}</table><p>{escape(privacy.selection)}</p>"
    )


def _redaction(privacy: PrivacyRecord) -> str:
    redaction = privacy.redaction
    if not redaction:
        return ""
    parts = []
    for split, summary in redaction.items():
        found = ", ".join(f"{n} {k}" for k, n in summary["counts"].items() if n) or "none"
        parts.append(f"{escape(split)}: {escape(found)}")
    return f"<p>PII redacted before training (and before each prediction): {'; '.join(parts)}.</p>"


def _audit(audit: dict[str, Any]) -> str:
    from trustune.report.plots import roc_curves

    unstable = audit.get("unstable", {})
    mark = {fpr: " (unstable)" if fpr in unstable else "" for fpr in ("0.01", "0.001")}
    rows = []
    for attack in audit["attacks"]:
        lo, hi = attack["auc_ci"]
        t1, t1ci = attack["tpr_at_1pct_fpr"], attack["tpr_at_1pct_fpr_ci"]
        t01, t01ci = attack["tpr_at_0.1pct_fpr"], attack["tpr_at_0.1pct_fpr_ci"]
        rows.append(
            f"<tr><td>{escape(attack['name'])}</td><td>{attack['auc']:.3f} [{lo:.3f}, {hi:.3f}]</td>"
            f"<td>{t1:.3f} [{t1ci[0]:.3f}, {t1ci[1]:.3f}]{mark['0.01']}</td>"
            f"<td>{t01:.3f} [{t01ci[0]:.3f}, {t01ci[1]:.3f}]{mark['0.001']}</td></tr>"
        )
    notes = "".join(f'<p class="note">{escape(n)}.</p>' for n in audit.get("notes", []))
    curves = {"roc": {a["name"]: a["roc"] for a in audit["attacks"]}}
    image = roc_curves(curves)
    plot = f'<img alt="membership-inference ROC" src="{image}">' if image else ""
    members, others = audit["members"], audit["non_members"]
    return (
        "<h3>Membership-inference audit</h3>"
        f"<p>{escape(audit['reading'])}</p>"
        f"<p>Members: {escape(members['path'])} ({members['used']} rows); non-members: "
        f"{escape(others['path'])} ({others['used']} rows). 95% bootstrap intervals in brackets; "
        f"{escape(audit['note'])}.</p>{notes}"
        "<table><tr><th>attack</th><th>ROC-AUC</th><th>TPR at 1% FPR</th>"
        f"<th>TPR at 0.1% FPR</th></tr>{''.join(rows)}</table>{plot}"
    )


def report_section(manifest: Manifest, run_dir: Path | None) -> Markup:
    """The "Privacy" section of a run's report, from its manifest and saved audit."""
    privacy = manifest.privacy or PrivacyRecord()
    html = _guarantee(privacy) + _redaction(privacy)
    audit = read_audit(run_dir) if run_dir is not None else None
    if audit is not None:
        html += _audit(audit)
    else:
        html += (
            "<p>No membership-inference audit yet: <code>trustune audit privacy RUN --members "
            "FILE --non-members FILE</code>.</p>"
        )
    return Markup(html)


def _section(given: SectionInput) -> Markup | None:
    """The section of a run that recorded anything about privacy (DP, redaction, an audit)."""
    if given.manifest.privacy is None:
        return None
    return report_section(given.manifest, given.run_dir)


register_section("privacy", title="Privacy", order=200, builder=_section, files=(AUDIT_FILE,))
