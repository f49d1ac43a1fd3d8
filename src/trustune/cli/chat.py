"""`trustune chat`: talk to a chat run in the terminal, the answer streamed as it is written."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from trustune.cli.common import add_run_argument
from trustune.cli.flags import ExamplesFormatter
from trustune.cli.generate import add_generation_arguments, generation_settings, load_generator
from trustune.errors import ConfigError

__all__ = ["add_parser"]

_HELP = "/reset starts over, /exit (or Ctrl-D) ends"


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "chat",
        help="chat with a causal-lm (chat) run in the terminal",
        description="An interactive chat with a run trained with --task chat: type a message, "
        "the answer streams as it is written. The conversation is kept while it fits the "
        f"run's context (the oldest turns are dropped after that); {_HELP}. Reads messages "
        "from standard input, one per line, so it also runs from a pipe.",
        epilog="example:\n  trustune chat runs/chat --system 'You answer in one sentence.'",
        formatter_class=ExamplesFormatter,
    )
    add_run_argument(p)
    add_generation_arguments(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    generator = load_generator(args)
    if not generator.chat_format:
        raise ConfigError(
            f"{args.run} learned {generator.task.data_format} examples, not conversations; "
            "use `trustune generate`"
        )
    settings = generation_settings(args)
    interactive = sys.stdin.isatty()
    out = sys.stdout
    if interactive:
        out.write(f"chatting with {args.run} ({_HELP})\n")
    history: list[dict[str, str]] = []
    while True:
        if interactive:
            out.write("you> ")
            out.flush()
        line = sys.stdin.readline()
        if not line:
            break
        message = line.strip()
        if not message:
            continue
        if message == "/exit":
            break
        if message == "/reset":
            history.clear()
            continue
        history.append({"role": "user", "content": message})
        if interactive:
            out.write("bot> ")
        reply = ""
        for piece in generator.stream(history, system=args.system, **settings):
            reply += piece
            out.write(piece)
            out.flush()
        out.write("\n")
        out.flush()
        history.append({"role": "assistant", "content": reply})
    return 0
