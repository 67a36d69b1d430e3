"""How the CLI shows things: user errors as one panel, numbers in MiB, JSON for scripts."""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from edgekit.errors import EdgekitError

P = ParamSpec("P")
R = TypeVar("R")

err_console = Console(stderr=True, highlight=False, soft_wrap=True)
out_console = Console(highlight=False)


def mib(n: float) -> str:
    return f"{n / 2**20:,.1f} MiB"


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")
    sys.stdout.flush()


def render_error(error: EdgekitError, as_json: bool = False) -> None:
    if as_json:
        print_json(error.to_dict())
        return
    body = f"[bold]{error.message}[/bold]"
    if error.hint:
        body += f"\n{error.hint}"
    err_console.print(Panel(body, title="edgekit: error", title_align="left", border_style="red"))


def user_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn an EdgekitError into one message and exit code 2 (EDGEKIT_DEBUG=1 re-raises)."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except EdgekitError as e:
            if os.environ.get("EDGEKIT_DEBUG") == "1":
                raise
            render_error(e, as_json=bool(kwargs.get("as_json")))
            raise typer.Exit(e.exit_code) from None

    return wrapper


@contextmanager
def progress_bar(description: str, quiet: bool) -> Iterator[Callable[..., None]]:
    """A rich bar on stderr; yields update(done, total, *label)."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("[dim]{task.fields[label]}"),
    )
    with Progress(*columns, console=err_console, disable=quiet, transient=True) as bar:
        task = bar.add_task(description, total=None, label="")

        def update(done: int, total: int, *label: str) -> None:
            bar.update(task, completed=done, total=total, label=label[0] if label else "")

        yield update


def kv_table(title: str, rows: dict[str, Any]) -> Table:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    for k, v in rows.items():
        table.add_row(k, str(v))
    return table
