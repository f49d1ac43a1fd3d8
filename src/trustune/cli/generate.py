"""`trustune generate`: text from a causal-lm run, for prompts given as flags or in a file."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from trustune.cli.common import add_run_argument
from trustune.cli.flags import ExamplesFormatter
from trustune.cli.key_options import (
    add_key_arguments,
    add_public_key_argument,
    key_from_args,
    public_key_from_args,
)
from trustune.cli.render import out_console
from trustune.errors import ConfigError, DataError

__all__ = ["add_generation_arguments", "add_parser", "generation_settings", "load_generator"]


def add_generation_arguments(p: argparse.ArgumentParser) -> None:
    """The sampling flags `generate` and `chat` share."""
    p.add_argument("--system", metavar="TEXT", help="a system prompt (chat runs)")
    p.add_argument(
        "--max-new-tokens", type=int, default=128, metavar="N",
        help="most tokens to write per answer (default: 128)",
    )  # fmt: skip
    p.add_argument(
        "--temperature", type=float, default=0.0, metavar="X",
        help="0 (the default): greedy, the same answer every time; higher: more varied",
    )  # fmt: skip
    p.add_argument(
        "--top-p", type=float, default=1.0, metavar="X",
        help="sample from the smallest set of tokens this likely (default: 1)",
    )  # fmt: skip
    p.add_argument("--seed", type=int, metavar="N", help="seed of the sampling")
    p.add_argument(
        "--stop", action="append", default=[], metavar="TEXT",
        help="end an answer where this text appears (repeatable)",
    )  # fmt: skip
    add_key_arguments(p, purpose="open an encrypted run")
    add_public_key_argument(p, required=False)


def generation_settings(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "max_new_tokens": args.max_new_tokens, "temperature": args.temperature,
        "top_p": args.top_p, "seed": args.seed, "stop": tuple(args.stop),
    }  # fmt: skip


def load_generator(args: argparse.Namespace) -> Any:
    """The run of ``args.run``, which must be a causal-lm run."""
    import trustune
    from trustune.generator import TextGenerator

    run = trustune.load(
        args.run, key=key_from_args(args, required=False), public_key=public_key_from_args(args)
    )
    if not isinstance(run, TextGenerator):
        raise ConfigError(
            f"{args.run} is a {run.task.name} run, which does not generate text; use "
            "`trustune predict`"
        )
    return run


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "generate",
        help="generate text with a causal-lm (chat) run",
        description="Write an answer to each prompt with a run trained with --task chat "
        "(or causal-lm). A chat run reads each prompt as a user message, through its chat "
        "template; a run trained on prompts and completions or plain text continues the "
        "prompt as written.",
        epilog="examples:\n"
        "  trustune generate runs/chat --prompt 'What are your opening hours?'\n"
        "  trustune generate runs/chat --input prompts.txt --output answers.jsonl",
        formatter_class=ExamplesFormatter,
    )
    add_run_argument(p)
    p.add_argument(
        "--prompt", action="append", default=[], metavar="TEXT", help="a prompt (repeatable)"
    )
    p.add_argument(
        "--input", metavar="FILE",
        help="prompts, one per line (.txt) or a 'prompt' field per line (.jsonl)",
    )  # fmt: skip
    p.add_argument("--output", metavar="FILE", help="with --input: the answers, as JSON lines")
    p.add_argument("--json", action="store_true", help="print each answer as a JSON line")
    p.add_argument(
        "--batch-size", type=int, default=8, metavar="N",
        help="prompts generated together (default: 8)",
    )  # fmt: skip
    add_generation_arguments(p)
    p.set_defaults(handler=run)


def _read_prompts(path: Path) -> list[str]:
    if not path.is_file():
        raise DataError(f"--input {path}: no such file")
    lines = path.read_text(encoding="utf-8").splitlines()
    if path.suffix.lower() != ".jsonl":
        prompts = [line for line in lines if line.strip()]
    else:
        prompts = []
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                raise DataError(f"{path}: line {number} is not JSON") from None
            if not isinstance(record, dict) or not isinstance(record.get("prompt"), str):
                raise DataError(f"{path}: line {number} has no 'prompt' text")
            prompts.append(record["prompt"])
    if not prompts:
        raise DataError(f"{path} holds no prompts")
    return prompts


def run(args: argparse.Namespace) -> int:
    if bool(args.prompt) == bool(args.input):
        raise ConfigError("give prompts with --prompt TEXT, or a file with --input FILE (not both)")
    if args.input and not args.output:
        raise ConfigError("--input needs --output FILE (.jsonl)")
    if args.output and Path(args.output).suffix.lower() != ".jsonl":
        raise ConfigError(f"--output {args.output}: answers are written as JSON lines (.jsonl)")
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size: {args.batch_size} is not allowed, it must be > 0")
    prompts = _read_prompts(Path(args.input)) if args.input else list(args.prompt)
    generator = load_generator(args)
    answers = generator.generate(
        prompts, system=args.system, batch_size=args.batch_size, **generation_settings(args)
    )
    if args.output:
        from trustune.artifact import atomic_write_text

        lines = [
            json.dumps({"prompt": p, **a.to_dict()}, ensure_ascii=False)
            for p, a in zip(prompts, answers, strict=True)
        ]
        atomic_write_text(Path(args.output), "\n".join(lines) + "\n")
        out_console.print(f"{len(answers)} answers written to {args.output}", soft_wrap=True)
        return 0
    for prompt, answer in zip(prompts, answers, strict=True):
        if args.json:
            sys.stdout.write(json.dumps({"prompt": prompt, **answer.to_dict()}) + "\n")
        else:
            sys.stdout.write(answer.text + "\n")
    sys.stdout.flush()
    return 0
