"""`trustune encrypt`: seal a run's payloads (AES-256-GCM, envelope keys) at rest."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from trustune.cli import key_options
from trustune.cli.render import out_console

__all__ = ["add_parser"]


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "encrypt",
        help="encrypt a run at rest",
        description="Encrypt a run: every payload (the files in model/, checkpoints/, ...) is sealed with "
        "AES-256-GCM under a fresh data key, which is wrapped by your key (a key file or a "
        "passphrase through scrypt). The records at the top of the run (trustune.json, "
        "metrics.json, report.html, ...) stay readable. "
        "load, predict, evaluate and explain open the encrypted run in memory with --key-file. "
        "Without --output the run is replaced in place (atomically). A signature is dropped: "
        "sign the encrypted run again.",
    )
    key_options.add_sealing_arguments(p, purpose="to encrypt with", output="encrypted")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from trustune.manifest import read_manifest
    from trustune.security import SIGNATURE_FILE, encrypt_run
    from trustune.security.envelope import EncryptionInfo

    key = key_options.required_key_from_args(args, confirm=True)
    was_signed = (Path(args.run) / SIGNATURE_FILE).is_file()
    target = encrypt_run(
        args.run, key=key, output=args.output, progress=key_options.progress_from_args(args)
    )
    info = EncryptionInfo.from_manifest(read_manifest(target), where=str(target))
    out_console.print(
        f"encrypted {len(info.sealed_files)} files into {target} (artifact "
        f"{info.artifact_id.hex()}, key id {info.key_wrap.kek_id})",
        soft_wrap=True,
    )
    if was_signed:
        out_console.print(
            f"the signature was dropped; sign again: trustune sign {target} --signing-key S"
        )
    return 0
