"""The self-contained HTML report of a run (``runs/NAME/report.html``)."""

from __future__ import annotations

from trustune.report.html import render_report, write_report

__all__ = ["render_report", "write_report"]
