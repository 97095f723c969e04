"""What lakescore draws on a terminal: the stage lines and Spark task bar of a run, and tables.

Shared by the CLI and the demo (rich, imported only when something is drawn).
"""

from __future__ import annotations

import sys
from typing import Any


def console(stderr: bool = True) -> Any:
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, highlight=False, width=None if stream.isatty() else 140)


class RichProgress:
    """Stage lines plus a task bar on stderr while Spark works."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.console = console()
        self._bar: Any = None
        self._task: Any = None

    def stage(self, name: str, detail: str = "") -> None:
        if self.quiet:
            return
        from rich.markup import escape

        self._stop_bar()
        # details are plain text (paths, requirements like "mlflow[extras]"), never markup
        self.console.print(f"[bold cyan]{name:>13}[/] {escape(detail)}", soft_wrap=True)

    def tasks(self, done: int, total: int) -> None:
        if self.quiet or not total:
            return
        if self._bar is None:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

            self._bar = Progress(
                "[cyan]{task.description:>13}",
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=self.console,
                transient=True,
            )
            self._bar.start()
            self._task = self._bar.add_task("spark tasks", total=total)
        self._bar.update(self._task, completed=done, total=total)

    def _stop_bar(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def close(self) -> None:
        self._stop_bar()


def print_table(rows: list[dict[str, Any]], title: str | None = None) -> None:
    from rich.table import Table

    table = Table(title=title, show_lines=False)
    if not rows:
        console(stderr=False).print("(no rows)")
        return
    for column in rows[0]:
        table.add_column(str(column))
    for row in rows:
        table.add_row(*["" if v is None else str(v) for v in row.values()])
    console(stderr=False).print(table)
