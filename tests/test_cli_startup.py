"""`trustune --help`, every command's --help and argument errors start without the heavy libraries
(torch, transformers, accelerate: seconds to import); `import trustune` is cheap too."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import trustune

HEAVY = ("torch", "transformers", "accelerate")
ENV = {**os.environ, "COLUMNS": "200"}

# Runs in a fresh interpreter: the help of every command and subcommand, then two argument
# errors, each through main(); prints what was imported (argparse exits through SystemExit).
_PROBE = """
import argparse, contextlib, io, json, sys
from trustune.cli.main import build_parser, main

def commands(parser, prefix=()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield (*prefix, name)
                yield from commands(child, (*prefix, name))

codes = {}
lines = [["--help"], *([*c, "--help"] for c in commands(build_parser())),
         ["train", "--epochs", "many"], ["evaluate"]]
for argv in lines:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            main(argv)
        except SystemExit as stop:
            codes[" ".join(argv)] = stop.code
heavy = sorted(m for m in sys.modules if m.split(".")[0] in %r)
print(json.dumps({"codes": codes, "heavy": heavy}))
"""


def test_help_and_argument_errors_import_no_heavy_library() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _PROBE % (HEAVY,)], capture_output=True, text=True, env=ENV,
        timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    codes = found["codes"]
    assert {"--help", "train --help", "keys list --help", "audit privacy --help"} <= set(codes)
    assert all(code == 0 for argv, code in codes.items() if argv.endswith("--help")), codes
    assert codes["train --epochs many"] == 2 and codes["evaluate"] == 2
    assert found["heavy"] == []


def test_importtime_of_the_help() -> None:
    """The same, as Python's own import log of `python -X importtime -m trustune.cli.main --help`."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "trustune.cli.main", "--help"],
        capture_output=True, text=True, env=ENV, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0 and "usage: trustune" in result.stdout
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()}
    assert "trustune.cli.train" in imported  # the log is read right
    assert not {name for name in imported if name.split(".")[0] in HEAVY}


def test_import_trustune_is_lazy() -> None:
    probe = (
        "import sys, trustune; trustune.TrustuneError, trustune.RunConfig; "
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=ENV, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_every_public_name_loads_on_first_use() -> None:
    from trustune.api import finetune, load
    from trustune.errors import TrustuneError

    assert set(trustune.__all__) <= set(dir(trustune))
    for name in trustune.__all__:
        assert getattr(trustune, name) is not None, name
    assert trustune.finetune is finetune and trustune.load is load
    assert trustune.TrustuneError is TrustuneError


def test_key_variables_agree_with_the_security_package() -> None:
    from trustune.cli import key_options
    from trustune.security import keys

    for name in ("ENV_KEY", "ENV_KEY_FILE", "ENV_PASSPHRASE"):
        assert getattr(key_options, name) == getattr(keys, name)


def test_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        trustune.no_such_name  # noqa: B018
