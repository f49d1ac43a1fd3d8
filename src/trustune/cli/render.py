"""Terminal rendering: the progress bar and tables (the library itself never prints).

Both consoles read no markup and no emoji codes: texts, labels, paths and messages come from
users, so ``[/]`` or ``:smile:`` print as typed. Style goes in ``Text`` objects, never markup.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.console import Console, RenderableType
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.progress import (
    Progress as RichProgress,
)
from rich.table import Table
from rich.text import Text

from trustune.progress import Progress

__all__ = ["BarProgress", "err_console", "metrics_table", "out_console"]

out_console = Console(highlight=False, markup=False, emoji=False)
err_console = Console(stderr=True, highlight=False, markup=False, emoji=False)

_TASK_NAMES = {"train": "training", "predict": "predicting", "evaluate": "evaluating"}
_DESCRIPTION_WIDTH = 30  # longer task names are cut with "…"


class _Bars(RichProgress):
    """One line per task (name, bar, count, elapsed, ETA), its live figures on a line below:
    fits an 80-column terminal, the bar shrinking (10 to 40 columns) to leave room."""

    def __init__(self, console: Console) -> None:
        self._bar_column = BarColumn()
        super().__init__(
            TextColumn("{task.description}", style="bold", markup=False), self._bar_column,
            MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("ETA", markup=False),
            TimeRemainingColumn(), console=console, transient=False,
        )  # fmt: skip

    def get_renderables(self) -> Iterable[RenderableType]:
        for task in self.tasks:
            if not task.visible:
                continue
            yield self.make_tasks_table([task])
            if task.fields.get("figures"):
                yield Text("  " + task.fields["figures"], no_wrap=True, overflow="ellipsis")

    def make_tasks_table(self, tasks: Iterable[Task]) -> Table:
        tasks = list(tasks)
        counts = max((2 * len(str(int(t.total or 0))) + 1 for t in tasks), default=3)
        names = max((len(t.description) for t in tasks), default=0)
        # the other columns: name, count, elapsed (7), "ETA", remaining (7), one space between each
        others = names + counts + 7 + 3 + 7 + 5
        self._bar_column.bar_width = max(10, min(40, self.console.width - others - 1))
        return super().make_tasks_table(tasks)


class BarProgress(Progress):
    """Shows trustune progress as a rich bar with loss, samples/s and ETA on stderr."""

    def __init__(self, console: Console | None = None, *, enabled: bool = True) -> None:
        self.console = console or err_console
        self.enabled = enabled
        self._bar: RichProgress | None = None
        self._tasks: dict[str, TaskID] = {}

    def start(self, task: str, *, total: int | None = None, completed: int = 0) -> None:
        if not self.enabled:
            return
        if self._bar is None:
            self._bar = _Bars(self.console)
            self._bar.start()
        name = _TASK_NAMES.get(task, task)
        if len(name) > _DESCRIPTION_WIDTH:
            name = name[: _DESCRIPTION_WIDTH - 1] + "…"
        self._tasks[task] = self._bar.add_task(name, total=total, completed=completed, figures="")

    def advance(self, task: str, amount: int = 1, **fields: Any) -> None:
        if self._bar is None or task not in self._tasks:
            return
        parts = []
        if "loss" in fields:
            parts.append(f"loss {fields['loss']:.4f}")
        if "samples_per_s" in fields:
            parts.append(f"{fields['samples_per_s']:.0f} samples/s")
        if "epoch" in fields:
            parts.append(f"epoch {fields['epoch']}")
        if "epsilon" in fields:  # privacy budget spent so far (DP-SGD)
            parts.append(f"ε {fields['epsilon']:.2f}")
        self._bar.update(self._tasks[task], advance=amount, figures="  ".join(parts))

    def message(self, text: str) -> None:
        if not self.enabled:
            return
        (self._bar.console if self._bar else self.console).print(Text(text, style="dim"))

    def end(self, task: str) -> None:
        if self._bar is not None and task in self._tasks:
            self._bar.stop_task(self._tasks.pop(task))
            if not self._tasks:
                self._bar.stop()
                self._bar = None


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def metrics_table(result: dict[str, Any], *, title: str) -> list[Table]:
    """The headline figures of an EvalResult, then per task: the per-class table and the
    confusion matrix (classification), the error by target range (regression)."""
    summary = Table(title=title, show_header=True)
    summary.add_column("metric")
    summary.add_column("value", justify="right")
    regression = "mse" in result
    if "perplexity" in result:  # text generation: held-out loss per token, and the speed
        for key in ("loss", "perplexity", "tokens", "examples"):
            summary.add_row(key, _fmt(result.get(key)))
        if speed := result.get("speed"):
            summary.add_row(
                "first token (batch 1)", f"{speed['time_to_first_token_ms_p50']:.1f} ms"
            )
            summary.add_row("generation (batch 1)", f"{speed['tokens_per_s']:.1f} tokens/s")
        return [summary]
    keys = (
        ("spearman", "pearson", "mse", "mae", "r2", "loss")
        if regression
        else ("accuracy", "f1_macro", "f1_weighted", "precision_macro", "recall_macro",
              "roc_auc", "pr_auc", "ece", "loss")
    )  # fmt: skip
    for key in keys:
        summary.add_row(key, _fmt(result.get(key)))
    speed = result.get("speed")
    if speed:
        summary.add_row("latency p50 (batch 1)", f"{speed['latency_ms_p50']:.1f} ms")
        summary.add_row("latency p95 (batch 1)", f"{speed['latency_ms_p95']:.1f} ms")
        summary.add_row(
            f"throughput (batch {speed['batch_size']})", f"{speed['throughput_per_s']:.0f} texts/s"
        )
    if regression:
        by_range = Table(title="error by target range")
        for column in ("targets", "rows", "mean abs. error", "bias"):
            by_range.add_column(column, justify="right")
        for row in result.get("by_range", []):
            lo, hi = row["range"]
            by_range.add_row(
                f"{lo:g} to {hi:g}", str(row["rows"]), _fmt(row["mae"]), _fmt(row["bias"])
            )
        return [summary, by_range]
    per_class = Table(title="per class")
    for column in ("class", "precision", "recall", "f1", "support"):
        per_class.add_column(column, justify="left" if column == "class" else "right")
    for name, row in result.get("per_class", {}).items():
        per_class.add_row(name, *(_fmt(row[k]) for k in ("precision", "recall", "f1", "support")))
    cm = result.get("confusion_matrix", {})
    confusion = Table(title="confusion matrix (rows: true, columns: predicted)")
    confusion.add_column("")
    for name in cm.get("labels", []):
        confusion.add_column(name, justify="right")
    for name, row in zip(cm.get("labels", []), cm.get("matrix", []), strict=False):
        confusion.add_row(name, *(str(v) for v in row))
    return [summary, per_class, confusion]
