"""The records of a run, rewritten together whenever something is added to them: the model card,
the file hashes, metrics.json, report.html and, last, the manifest.

Every stage that records something (training, evaluation, explanations, the membership audit)
saves through here, so each gets the same model card and the same report sections. This module
sits below the stages: it imports the artifact layer and the report, never a stage.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from trustune.artifact import METRICS, atomic_write_json, hash_files
from trustune.manifest import Manifest, write_manifest

__all__ = ["save_records"]


def save_records(run_dir: Path, manifest: Manifest, metrics: dict[str, Any]) -> Manifest:
    """Write the model card, metrics, report and manifest (with file hashes); the manifest goes
    last, so a run whose manifest is complete has every other record too. Returns the manifest
    as written (its ``files`` filled in)."""
    from trustune.report import write_report
    from trustune.report.model_card import write_model_card

    run_dir = Path(run_dir)
    write_model_card(run_dir, manifest, metrics)  # model/README.md, hashed with the model files
    manifest = dataclasses.replace(manifest, files=hash_files(run_dir))
    atomic_write_json(run_dir / METRICS, metrics)
    write_report(run_dir, manifest, metrics)  # the task's sections, privacy, explanations, ...
    write_manifest(run_dir, manifest)
    return manifest
