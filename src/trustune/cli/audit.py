"""`trustune audit`: evidence about a run. `audit privacy`: membership-inference attacks.

``audit`` is a group of subcommands; each is a ``(name, add_parser)`` entry of ``_AUDITS``,
so another kind of audit (e.g. ``audit log``) is one more entry.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.text import Text

from trustune.cli.audit_log import add_log_parser, add_prune_parser
from trustune.cli.common import add_run_argument
from trustune.cli.render import err_console, out_console

__all__ = ["add_parser"]


def _add_privacy(sub: Any) -> None:
    p = sub.add_parser(
        "privacy",
        help="membership-inference attacks: can training rows be told from unseen ones?",
        description="Attack the run's model with membership-inference attacks (loss threshold; "
        "loss calibrated by perturbed neighbours; with --reference, by a reference model) and "
        "report ROC-AUC and the true-positive rate at 1% and 0.1% false positives, with 95% "
        "bootstrap intervals. Saved into the run (privacy_audit.json, manifest, report.html).",
    )
    add_run_argument(p)
    p.add_argument(
        "--members", required=True, metavar="FILE",
        help="labeled rows that were in training (the run's own training file: only the rows "
        "its split trained on are used)",
    )  # fmt: skip
    p.add_argument(
        "--non-members",
        required=True,
        metavar="FILE",
        help="labeled rows of the same kind that training never saw (the run's own training "
        "file: only the rows its split held out)",
    )
    p.add_argument(
        "--reference",
        metavar="RUN",
        help="a run trained on other data of the same kind (adds the reference-model attack)",
    )
    p.add_argument(
        "--limit", type=int, default=2000, metavar="N", help="rows used per file (default: 2000)"
    )
    p.add_argument(
        "--neighbours",
        type=int,
        default=8,
        metavar="K",
        help="perturbed copies per text for the calibrated attack (default: 8)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of subsampling, neighbours, bootstrap")
    p.add_argument("--json", action="store_true", help="print the full result as JSON")
    p.set_defaults(handler=_run_privacy)


def _run_privacy(args: argparse.Namespace) -> int:
    from rich.table import Table

    import trustune
    from trustune.privacy.audit import audit_privacy

    reference = trustune.load(args.reference) if args.reference is not None else None
    result = audit_privacy(
        trustune.load(args.run), members=args.members, non_members=args.non_members,
        reference=reference, limit=args.limit, neighbour_count=args.neighbours, seed=args.seed,
    )  # fmt: skip
    if args.json:
        out_console.print_json(json.dumps(result))
        return 0
    unstable = result.get("unstable", {})
    mark = {fpr: " (unstable)" if fpr in unstable else "" for fpr in ("0.01", "0.001")}
    table = Table(title="membership-inference audit (95% bootstrap CI)")
    for column in ("attack", "ROC-AUC", "TPR @ 1% FPR", "TPR @ 0.1% FPR"):
        table.add_column(column)
    for attack in result["attacks"]:
        lo, hi = attack["auc_ci"]
        table.add_row(
            attack["name"],
            f"{attack['auc']:.3f} [{lo:.3f}, {hi:.3f}]",
            f"{attack['tpr_at_1pct_fpr']:.3f}{mark['0.01']}",
            f"{attack['tpr_at_0.1pct_fpr']:.3f}{mark['0.001']}",
        )
    members, others = result["members"], result["non_members"]
    out_console.print(
        f"members: {members['used']} rows of {members['path']} ({members['part']}); "
        f"non-members: {others['used']} rows of {others['path']} ({others['part']})"
    )
    out_console.print(table)
    for note in result.get("notes", []):
        err_console.print(Text(f"warning: {note}", style="yellow"))
    out_console.print(result["reading"])
    out_console.print(f"saved into {Path(args.run) / 'privacy_audit.json'} and the report")
    return 0


_AUDITS: tuple[tuple[str, Callable[[Any], None]], ...] = (
    ("privacy", _add_privacy),
    ("log", add_log_parser),  # the HTTP service's request log (trustune.store)
    ("prune", add_prune_parser),  # its retention
)


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "audit",
        help="evidence about a run (privacy: membership-inference attacks; log: served requests; "
        "prune: log retention)",
        description="Audits that produce evidence about a run.",
    )
    kinds = p.add_subparsers(dest="audit", metavar="AUDIT", required=True)
    for _, add in _AUDITS:
        add(kinds)
