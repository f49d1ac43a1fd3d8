"""`trustune compress`: a smaller or faster copy of a run, refused if it loses accuracy."""

from __future__ import annotations

import argparse
import json
from typing import Any

from trustune.cli.common import add_run_argument
from trustune.cli.flags import ExamplesFormatter, add_settings_flags, settings_values
from trustune.cli.key_options import add_key_arguments, key_from_args
from trustune.cli.render import BarProgress, err_console, out_console

__all__ = ["EXAMPLES", "METHODS_HELP", "add_parser"]

# the built-in methods, for --help without importing them (tests/test_compress.py keeps it true)
METHODS_HELP = (
    ("auto", "try the candidates on --data, keep the fastest within --max-drop"),
    ("onnx", "ONNX Runtime, fp32, attention/LayerNorm/GELU fused"),
    ("onnx-int8", "ONNX Runtime, int8, calibrated on --data (onnx-int8:static: fixed ranges)"),
    ("int8", "PyTorch dynamic int8 (torch.ao), quantized when loaded"),
    ("bf16", "PyTorch, bf16 weights (half the size)"),
    (
        "prune:SPARSITY",
        "remove the least important feed-forward neurons of every layer, then fine-tune briefly",
    ),
    ("distill:LAYERS", "a student with LAYERS of the teacher's layers, trained on its outputs"),
)

EXAMPLES = (  # (what it does, the command): shown by --help
    ("ONNX Runtime, int8 weights; refused if accuracy drops > 1 point",
     "trustune compress runs/a --method onnx-int8 --data dev.csv --output runs/a8"),
    ("the fastest candidate within half a point",
     "trustune compress runs/a --method auto --data dev.csv --max-drop 0.5 \\\n"
     "      --output runs/af"),
    ("then measure them side by side",
     "trustune compare runs/a runs/a8 runs/af --data dev.csv"),
)  # fmt: skip


def add_parser(sub: Any) -> None:
    from trustune.compress.settings import CompressSettings

    listing = "; ".join(f"{name}: {what}" for name, what in METHODS_HELP)
    p = sub.add_parser(
        "compress",
        help="make a smaller, faster run (ONNX Runtime, int8, bf16, pruning, distillation)",
        description="Write a compressed copy of RUN into --output: a run folder that predict, "
        "evaluate, serve, explain (perturbation methods), compare, encrypt, sign and "
        "trustune.load use as any other, with its lineage in the manifest. The result is "
        "measured against RUN on --data and refused (nothing written) when its main metric "
        "drops more than --max-drop points. An encrypted RUN gives an encrypted result.",
        epilog="examples:\n" + "".join(f"  # {what}\n  {command}\n" for what, command in EXAMPLES),
        formatter_class=ExamplesFormatter,
    )
    add_run_argument(p)
    p.add_argument("--method", required=True, metavar="METHOD", help=f"one of: {listing}")
    p.add_argument("--output", required=True, metavar="DIR", help="the new run folder")
    p.add_argument(
        "--data", metavar="FILE",
        help="labeled validation data the result is measured on against RUN (default: RUN's "
        "validation file, when it was a separate file)",
    )  # fmt: skip
    p.add_argument("--overwrite", action="store_true", help="replace --output if it exists")
    add_settings_flags(p, CompressSettings)
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_key_arguments(p, purpose="to open an encrypted run (the result is sealed with it too)")
    p.set_defaults(handler=run)


def _size(n: int) -> str:
    from trustune.cli.prune import format_size

    return format_size(n)


def run(args: argparse.Namespace) -> int:
    from trustune.compress.runner import compress
    from trustune.compress.settings import CompressSettings

    settings = CompressSettings(**settings_values(args, CompressSettings))
    result = compress(
        args.run, method=args.method, output=args.output, data=args.data, settings=settings,
        overwrite=args.overwrite, key=key_from_args(args, required=False),
        progress=BarProgress(enabled=not args.quiet and not args.json),
    )  # fmt: skip
    if args.json:
        out_console.print_json(json.dumps(result.to_dict(), default=str))
        return 0
    guard = result.guard
    for note in result.notes:
        err_console.print(f"note: {note}", soft_wrap=True)
    if result.candidates:
        for row in result.candidates:
            out_console.print(
                f"  {row.get('method')}: {row.get('status', '')} {row.get('summary', '')}".rstrip(),
                soft_wrap=True,
                markup=False,
            )
    forced = " (kept with --force)" if guard.get("forced") else ""
    out_console.print(
        f"{result.method} ({result.engine}): {guard['metric']} {guard['parent']:.4f} -> "
        f"{guard['compressed']:.4f} on {guard['data']} ({guard['drop_points']:+.2f} points "
        f"drop{forced}); model {_size(result.parent_size_bytes)} -> {_size(result.size_bytes)}",
        soft_wrap=True,
        markup=False,
    )
    out_console.print(f"wrote {result.path}", soft_wrap=True, markup=False)
    return 0
