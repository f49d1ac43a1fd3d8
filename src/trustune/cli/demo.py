"""`trustune demo`: the whole pipeline on the bundled model and generated support-request data."""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path
from typing import Any

from trustune.cli.render import BarProgress, err_console, metrics_table, out_console

__all__ = ["add_parser"]

_EXAMPLES = [
    "I was charged twice for my subscription this month",
    "The app crashes every time I open the settings page",
    "Where is my package? The tracking number has not updated in a week",
    "How do I change the e-mail address on my profile?",
]


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "demo",
        help="run the whole pipeline on demo data",
        description="Write a demo data set of customer-support requests (4 classes), fine-tune the "
        "bundled model on it, evaluate on held-out data, predict and explain a few texts, write the "
        "report, and create a SQLite key store for `trustune serve`.",
    )
    p.add_argument(
        "--output",
        default="demo",
        metavar="DIR",
        help="folder for the demo data and run (default: demo)",
    )
    p.add_argument(
        "--model", default="minilm", help="model to fine-tune (default: the bundled minilm)"
    )
    p.add_argument(
        "--rows", type=int, default=800, metavar="N", help="demo examples to generate (default 800)"
    )
    p.add_argument("--epochs", type=int, default=4, metavar="N", help="training epochs (default 4)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from rich.text import Text

    import trustune
    from trustune.data.demo import write_demo_dataset
    from trustune.explain.render import terminal_text
    from trustune.run import record_evaluation
    from trustune.store import Role, Store

    root = Path(args.output)
    train_file, test_file = write_demo_dataset(root / "data", rows=args.rows)
    err_console.print(f"demo data: {train_file} and {test_file}")
    run_dir = root / "runs" / "support"
    run = trustune.finetune(
        train_file, model=args.model, output=run_dir, epochs=args.epochs, lr=1e-4,
        overwrite=True, progress=BarProgress(enabled=not args.quiet),
    )  # fmt: skip
    model = run.classifier
    result = model.evaluate(test_file, progress=BarProgress(enabled=not args.quiet))
    record_evaluation(run_dir, test_file.stem, result)
    for table in metrics_table(result, title=f"held-out test set ({result['data']['rows']} rows)"):
        out_console.print(table)
    out_console.print(
        "predictions, each word coloured by its integrated-gradients score "
        "(green for the label, red against):"
    )
    explanations = model.explain(_EXAMPLES, n_steps=20)
    for p, explanation in zip(model.predict(_EXAMPLES), explanations, strict=True):
        shown = Text(f"  {p.label:>10} {p.score:.2f}  ")
        shown.append_text(terminal_text(explanation, color_system=out_console.color_system))
        out_console.print(shown, soft_wrap=True)
    db = (root / "trustune.db").resolve()
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(days=7)
    with Store.open(f"sqlite:///{db}") as store:
        key, secret = store.create_key(name="demo", role=Role.EXPLAIN, expires_at=expires)
    out_console.print(f"\nreport: {run_dir / 'report.html'}")
    out_console.print(
        f"API key store: {db} (SQLite). Demo key {key.id} (role explain, expires in 7 days); "
        "its secret, shown only this once, for the web console of `trustune serve`:"
    )
    out_console.print(f"  {secret}", markup=False, highlight=False)
    out_console.print("next, try:")
    for line in (
        f'trustune predict {run_dir} --text "my invoice shows the wrong amount"',
        f'trustune explain {run_dir} --text "my card was charged twice" --format html --output '
        f"{root / 'explanation.html'}",
        f"trustune evaluate {run_dir} --data {test_file}",
        f"trustune predict {run_dir} --input {test_file} --output {root / 'predictions.jsonl'}",
        f"trustune keys create --db sqlite:///{db} --name me --role explain",
        f"trustune serve {run_dir} --db sqlite:///{db}      # then open http://127.0.0.1:8000/",
        f"trustune train --data {train_file} --epochs 2 --output runs/mine",
    ):
        out_console.print(f"  {line}", soft_wrap=True, markup=False, highlight=False)
    return 0
