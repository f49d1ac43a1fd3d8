"""The layers of docs/architecture.md hold: import-linter's contracts, and no library module
reaching up to the package front door."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "trustune"


def test_import_contracts_are_kept() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint)], capture_output=True, text=True, cwd=SRC.parents[1], check=False
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert " kept, 0 broken." in result.stdout
    # the layers, and train/ reaching DP-SGD through the trustune.privacy package only
    assert "Layers: each part imports only the layers below it KEPT" in result.stdout
    assert "use the trustune.privacy package, not its modules KEPT" in result.stdout


def test_library_modules_do_not_import_the_package_front_door() -> None:
    """``import trustune`` / ``trustune.load`` is for users, the CLI and the server; a stage
    that called it would depend on everything above it."""
    offenders = []
    for path in SRC.rglob("*.py"):
        relative = path.relative_to(SRC)
        if relative.parts[0] in ("cli", "serve") or relative.name in ("__init__.py", "api.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import) and any(a.name == "trustune" for a in node.names):
                offenders.append(f"{relative}:{node.lineno}")
            if isinstance(node, ast.ImportFrom) and node.module == "trustune":
                offenders.append(f"{relative}:{node.lineno}")
    assert offenders == []
