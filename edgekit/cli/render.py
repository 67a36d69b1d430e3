"""How the CLI shows things: user errors as one panel, numbers in MiB, JSON for scripts."""

from __future__ import annotations

import functools
import json
import os
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

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
    """One error panel, never cropped. On a terminal it wraps (and folds long paths); elsewhere
    (CI logs, 2>err.txt) rich would box it at 80 columns and cut off the path or key the message
    is about, so the panel is made as wide as its longest line instead: every line stays whole."""
    if as_json:
        print_json(error.to_dict())
        return
    # Text, not markup: a message quoting a file name or a TOML table ("[runtime]") must not be
    # read as rich markup.
    body = Text(error.message, style="bold", overflow="fold")
    if error.hint:
        body.append("\n" + error.hint, style="not bold")
    panel = Panel(body, title="edgekit: error", title_align="left", border_style="red")
    if err_console.is_terminal:
        err_console.print(panel, soft_wrap=False)
        return
    widest = max((len(line) for line in body.plain.splitlines()), default=0)
    saved = err_console._width  # no public way to widen one print past the console's width
    err_console.width = max(widest + 4, 40)
    try:
        err_console.print(panel, soft_wrap=False)
    finally:
        err_console._width = saved


def render_crash(error: Exception) -> None:
    """--json promises one JSON object on stdout, also when edgekit itself fails."""
    traceback.print_exception(error, file=sys.stderr)
    print_json(
        {
            "error": "InternalError",
            "message": f"{type(error).__name__}: {error}",
            "hint": "This is a bug in edgekit; please report it with the traceback above.",
        }
    )


def user_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn an EdgekitError into one message and exit code 2 (EDGEKIT_DEBUG=1 re-raises); with
    --json, any other exception still prints a JSON error object (exit code 1)."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except EdgekitError as e:
            if os.environ.get("EDGEKIT_DEBUG") == "1":
                raise
            render_error(e, as_json=bool(kwargs.get("as_json")))
            raise typer.Exit(e.exit_code) from None
        except (typer.Exit, typer.Abort, typer.exceptions.TyperException):
            raise  # the CLI's own control flow and usage errors
        except Exception as e:
            if not kwargs.get("as_json") or os.environ.get("EDGEKIT_DEBUG") == "1":
                raise  # a bug keeps its traceback
            render_crash(e)
            raise typer.Exit(1) from None

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
        # Text, not markup: metadata from a model file ("[INST]", "[/s]") is data, never style.
        table.add_row(Text(k), Text(str(v)))
    return table
