"""What every command prints with: the consoles, and `fail` for an operator's error (one line, exit 1)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console

console = Console()
err_console = Console(stderr=True)


@contextmanager
def reading_progress(file_name: str) -> Iterator:
    """A progress bar on stderr while a contact file is read: rows so far, and how much of the file is read
    when its source can tell (`update(report, fraction)` after each chunk). Drawn only on a terminal."""
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

    columns = [TextColumn("reading {task.description}"), BarColumn(), TaskProgressColumn(),
               TextColumn("{task.fields[rows]:,} rows, {task.fields[valid]:,} to send"), TimeElapsedColumn()]
    with Progress(*columns, console=err_console, transient=True, disable=not err_console.is_terminal) as bar:
        task = bar.add_task(file_name, total=None, rows=0, valid=0)

        def update(report, fraction: float | None) -> None:
            bar.update(task, rows=report.rows, valid=report.valid,
                       **({"total": 1.0, "completed": fraction} if fraction is not None else {}))

        yield update


def fail(message: str, code: int = 1) -> None:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)
