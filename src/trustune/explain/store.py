"""Explanations kept in a run: ``explanations.json``, its manifest summary and its report section."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from markupsafe import Markup

from trustune.artifact import atomic_write_json, read_metrics, utc_now
from trustune.errors import ArtifactError
from trustune.explain.explanation import Explanation
from trustune.explain.faithfulness import FaithfulnessReport
from trustune.explain.global_importance import GlobalImportance
from trustune.manifest import read_manifest

__all__ = [
    "EXPLANATIONS",
    "pick_examples",
    "read_explanations",
    "record_explanations",
    "report_section",
]

EXPLANATIONS = "explanations.json"
_FORMAT = "trustune.explanations"
_FORMAT_VERSION = 1


def read_explanations(run_dir: Path) -> dict[str, Any]:
    """The run's explanations.json, or an empty record when there is none yet."""
    path = Path(run_dir) / EXPLANATIONS
    if not path.exists():
        return {"format": _FORMAT, "format_version": _FORMAT_VERSION}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ArtifactError(f"{path} cannot be read as JSON: {e}") from None
    if not isinstance(data, dict) or data.get("format") != _FORMAT:
        raise ArtifactError(f"{path} is not a trustune explanations file")
    return data


def pick_examples(
    explanations: Sequence[Explanation], true_labels: Sequence[Any] | None, *, per_kind: int = 3
) -> list[tuple[Explanation, Any]]:
    """A few correct and a few wrong predictions (the most confident first) to show in the report.

    Without true labels, the most confident predictions are taken.
    """
    truths = list(true_labels) if true_labels is not None else [None] * len(explanations)
    paired = list(zip(explanations, truths, strict=True))
    paired.sort(key=lambda p: -p[0].probabilities.get(str(p[0].predicted), 0.0))
    if true_labels is None:
        return paired[: 2 * per_kind]
    right = [p for p in paired if str(p[1]) == str(p[0].predicted)]
    wrong = [p for p in paired if str(p[1]) != str(p[0].predicted)]
    return right[:per_kind] + wrong[:per_kind]


def record_explanations(
    run_dir: Path,
    *,
    data: Mapping[str, Any] | None = None,
    importance: GlobalImportance | None = None,
    examples: Sequence[tuple[Explanation, Any]] | None = None,
    faithfulness: FaithfulnessReport | None = None,
) -> Path:
    """Save results into ``explanations.json`` (atomically), summarise them in the manifest and
    rebuild the report; parts not given keep their earlier value."""
    from trustune.records import save_records

    run_dir = Path(run_dir)
    manifest = read_manifest(run_dir)
    store = read_explanations(run_dir)
    source = dict(data or {})
    store["model_sha256"] = manifest.files.get("model/model.safetensors")
    if importance is not None:
        store["global"] = {**importance.to_dict(), "data": source, "created": utc_now()}
    if examples is not None:
        store["examples"] = [{**e.to_dict(), "true_label": truth} for e, truth in examples]
    if faithfulness is not None:
        store["faithfulness"] = {**faithfulness.to_dict(), "data": source, "created": utc_now()}
    path = run_dir / EXPLANATIONS
    atomic_write_json(path, store)
    summary = _summary(store)
    save_records(
        run_dir, dataclasses.replace(manifest, explanations=summary), read_metrics(run_dir)
    )
    return path


def _summary(store: Mapping[str, Any]) -> dict[str, Any]:
    """What the manifest records: which data, which method, the faithfulness figures."""
    summary: dict[str, Any] = {"file": EXPLANATIONS}
    if "global" in store:
        g = store["global"]
        summary["global"] = {"method": g["method"], "texts": g["texts"], "data": g.get("data")}
    if "faithfulness" in store:
        f = store["faithfulness"]
        summary["faithfulness"] = {
            "texts": f["texts"],
            "data": f.get("data"),
            "methods": {
                m["method"]: {
                    "comprehensiveness": m["comprehensiveness"],
                    "sufficiency": m["sufficiency"],
                }
                for m in f["methods"]
            },
        }
    return summary


def report_section(path: Path) -> Markup:
    """The report's "Explanations" section from an explanations.json file."""
    from trustune.explain.render import render_section

    store = read_explanations(path.parent)
    examples = [Explanation.from_dict(e) for e in store.get("examples", [])]
    truths = [e.get("true_label") for e in store.get("examples", [])]
    importance = GlobalImportance.from_dict(store["global"]) if "global" in store else None
    faithfulness = (
        FaithfulnessReport.from_dict(store["faithfulness"]) if "faithfulness" in store else None
    )
    notes = []
    for key, what in (("global", "Top words"), ("faithfulness", "Faithfulness")):
        source = store.get(key, {}).get("data") or {}
        if source.get("path"):
            notes.append(f"{what}: {source['path']} ({source.get('rows', '?')} rows).")
    return render_section(
        examples,
        true_labels=truths,
        importance=importance,
        faithfulness=faithfulness,
        notes=notes,
    )
