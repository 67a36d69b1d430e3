"""How the CLI shows things: user errors as one panel, numbers in MiB, JSON for scripts."""

from __future__ import annotations

import errno
import functools
import json
import os
import re
import sys
import traceback
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from typing import Any, ParamSpec, TypeVar

import typer
from rich.console import Console, ConsoleOptions, RenderableType
from rich.panel import Panel
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.segment import Segment
from rich.table import Table
from rich.text import Text

from edgekit.errors import ClosedOutputError, EdgekitError, OutputStreamError
from edgekit.outputs import command_scope

P = ParamSpec("P")
R = TypeVar("R")

# C0 controls but newline and tab, DEL, and C1 controls (U+0080..U+009F: a terminal may read
# U+009B as CSI). A model, profile or file name holding ESC sequences must not drive the terminal.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
WIDEST_PIPE = 1000  # a table on stdout in a pipe is printed whole, up to this many columns


def safe_text(text: str) -> str:
    """Control characters as visible pictures (ESC as U+241B), one cell each."""
    return _CONTROL.sub(_picture, text)


def _picture(m: re.Match[str]) -> str:
    code = ord(m[0])
    return chr(0x2400 + code) if code < 0x20 else "\u2421" if code == 0x7F else "\ufffd"


class SafeConsole(Console):
    """A rich console that never writes a control character it did not put there itself (its
    own colours and cursor moves are control segments, kept), and that prints a table or panel
    on a pipe at its natural width instead of cutting it at 80 columns."""

    def render(
        self, renderable: RenderableType, options: ConsoleOptions | None = None
    ) -> Iterable[Segment]:
        for segment in super().render(renderable, options):
            if segment.control or not _CONTROL.search(segment.text):
                yield segment
            else:
                yield Segment(safe_text(segment.text), segment.style, segment.control)

    def print(self, *objects: Any, **kwargs: Any) -> None:
        if self.is_terminal or self._width is not None or kwargs.get("width") is not None:
            super().print(*objects, **kwargs)
            return
        wide = self.options.update_width(WIDEST_PIPE)
        needed = max(
            (self.measure(o, options=wide).maximum for o in objects if not isinstance(o, str)),
            default=0,
        )
        if needed <= self.width:
            super().print(*objects, **kwargs)
            return
        saved = self._width  # print(width=...) is capped at the console's width: widen it
        self.width = min(needed, WIDEST_PIPE)
        try:
            super().print(*objects, **kwargs)
        finally:
            self._width = saved


class _Stdout:
    """sys.stdout as it is at each write (a test runner swaps it), with a failed write raised as
    the user error it is: rich would otherwise let a full disk's OSError out as a traceback."""

    def write(self, text: str) -> int:
        try:
            return sys.stdout.write(text)
        except OSError as e:
            raise stdout_error(e) from None

    def flush(self) -> None:
        try:
            sys.stdout.flush()
        except OSError as e:
            raise stdout_error(e) from None

    def __getattr__(self, name: str) -> Any:
        return getattr(sys.stdout, name)


err_console: Console = SafeConsole(stderr=True, highlight=False, soft_wrap=True)
out_console = SafeConsole(file=_Stdout(), highlight=False)  # type: ignore[arg-type]


def mib(n: float) -> str:
    return f"{n / 2**20:,.1f} MiB"


def write_stdout(text: str) -> None:
    """Text on stdout, flushed: a full disk or a closed pipe is a user error, not a traceback."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except OSError as e:
        raise stdout_error(e) from None


def write_model_text(piece: str) -> None:
    """What the model generates is untrusted too: its control characters are made visible."""
    write_stdout(safe_text(piece))


def print_json(obj: Any) -> None:
    write_stdout(json.dumps(obj, indent=2, default=str) + "\n")


def stdout_error(e: OSError) -> OutputStreamError:
    """Stop writing to a broken stdout: later writes and the interpreter's last flush would
    each raise again (and print "Exception ignored" on exit)."""
    _silence_stdout()
    if e.errno == errno.EPIPE:
        return ClosedOutputError("standard output was closed (the reading program exited)")
    return OutputStreamError(
        f"cannot write to standard output: {e.strerror or e}",
        hint="Free some disk space, or redirect the output elsewhere.",
    )


def _silence_stdout() -> None:
    try:
        fd = sys.stdout.fileno()
        devnull = os.open(os.devnull, os.O_WRONLY)
    except (OSError, ValueError, AttributeError):
        return  # not a real file (a test runner's buffer): nothing will flush it later
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


def _stdout_broken() -> bool:
    try:
        sys.stdout.flush()
    except (OSError, ValueError):
        return True
    return False


def render_error(error: EdgekitError, as_json: bool = False) -> None:
    """One error panel, never cropped. On a terminal it wraps (and folds long paths); elsewhere
    (CI logs, 2>err.txt) rich would box it at 80 columns and cut off the path or key the message
    is about, so the panel is made as wide as its longest line instead: every line stays whole.
    With --json the error is the JSON object on stdout, unless stdout itself is what failed."""
    if as_json and not isinstance(error, OutputStreamError):
        try:
            print_json(error.to_dict())
            return
        except OutputStreamError as e:
            error = e
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
    doc = {
        "error": "InternalError",
        "message": f"{type(error).__name__}: {error}",
        "hint": "This is a bug in edgekit; please report it with the traceback above.",
    }
    try:
        print_json(doc)
    except OutputStreamError as e:
        render_error(e)


def _as_stream_error(e: OSError) -> OutputStreamError | None:
    """An OSError that a write to a broken stdout raised (through rich or print), if it is one."""
    return stdout_error(e) if _stdout_broken() else None


def user_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn an EdgekitError into one message and exit code 2 (EDGEKIT_DEBUG=1 re-raises); with
    --json, any other exception still prints a JSON error object (exit code 1). The inputs a
    command declares for the output guard (edgekit.outputs) are forgotten when it ends."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        as_json = bool(kwargs.get("as_json"))
        try:
            with command_scope():
                return command(*args, **kwargs)
        except EdgekitError as e:
            if os.environ.get("EDGEKIT_DEBUG") == "1":
                raise
            _render_quietly(e, as_json)
            raise typer.Exit(e.exit_code) from None
        except (typer.Exit, typer.Abort, typer.exceptions.TyperException):
            raise  # the CLI's own control flow and usage errors
        except KeyboardInterrupt:
            # Ctrl-C: the shell's convention (128 + SIGINT), after the outputs' context managers
            # removed what the run had started to write; click would say "Aborted!" with exit 1.
            raise typer.Exit(130) from None
        except OSError as e:
            stream_error = _as_stream_error(e)
            if stream_error is None:
                if not as_json or os.environ.get("EDGEKIT_DEBUG") == "1":
                    raise
                render_crash(e)
                raise typer.Exit(1) from None
            _render_quietly(stream_error, as_json)
            raise typer.Exit(stream_error.exit_code) from None
        except Exception as e:
            if not as_json or os.environ.get("EDGEKIT_DEBUG") == "1":
                raise  # a bug keeps its traceback
            render_crash(e)
            raise typer.Exit(1) from None

    return wrapper


def _render_quietly(error: EdgekitError, as_json: bool) -> None:
    """Render the error; if stderr is broken too there is nowhere left to say it. A reader that
    went away (`| head`) is the user's choice, not an error to report."""
    if isinstance(error, ClosedOutputError):
        return
    with suppress(OSError):
        render_error(error, as_json=as_json)


def _bar(quiet: bool = False) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        TextColumn("[dim]{task.fields[label]}"),
        console=err_console,
        disable=quiet,
        transient=True,
    )


@contextmanager
def progress_bar(description: str, quiet: bool) -> Iterator[Callable[..., None]]:
    """A rich bar on stderr; yields update(done, total, *label)."""
    with _bar(quiet) as bar:
        task = bar.add_task(description, total=None, label="")

        def update(done: int, total: int, *label: str) -> None:
            bar.update(task, completed=done, total=total, label=label[0] if label else "")

        yield update


def stage_bar(description: str) -> Callable[[int, int], None]:
    """report(done, total) for a stage that only reports counts: a rich bar with an ETA on
    stderr (also under --json, whose promise is about stdout), gone when done reaches total."""
    state: dict[str, tuple[Progress, TaskID]] = {}

    def report(done: int, total: int) -> None:
        if "bar" not in state:
            bar = _bar()
            bar.start()
            state["bar"] = (bar, bar.add_task(description, total=total, label=""))
        bar, task = state["bar"]
        bar.update(task, completed=done, total=total)
        if done >= total:
            bar.stop()
            del state["bar"]

    return report


def kv_table(title: str, rows: dict[str, Any]) -> Table:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    for k, v in rows.items():
        # Text, not markup: metadata from a model file ("[INST]", "[/s]") is data, never style.
        table.add_row(Text(k), Text(str(v)))
    return table
