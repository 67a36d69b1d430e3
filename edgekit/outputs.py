"""Every file a command writes goes through here: models, plans, scores, imatrices, adapters.

Three promises, kept in one place so no writer can forget one:
- an output is never one of the command's inputs (the same path, a symlink, `..`, a hard link:
  compared by device and inode where the file exists), unless the user allowed it (--force);
- it is checked *before* any work (folder exists, is writable, has room), not after minutes;
- it is written to `.NAME.PID.partial` beside it and renamed at the end, so a crash or Ctrl-C
  leaves the old file or none; partials of killed runs are removed by the next write there.

A command declares its inputs once with `protect_inputs`; writers deep in a pipeline then check
against them without having the inputs passed down.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit.errors import OutputPathError

PARTIAL_SUFFIX = ".partial"


@dataclass(frozen=True)
class _Guard:
    inputs: tuple[Path, ...] = ()
    allowed: tuple[Path, ...] = ()  # outputs the user allowed to replace an input (--force)


_guard: ContextVar[_Guard | None] = ContextVar("edgekit_output_guard", default=None)


def _current() -> _Guard:
    return _guard.get() or _Guard()


@contextlib.contextmanager
def command_scope() -> Iterator[None]:
    """Inputs declared inside belong to one command and are forgotten after it."""
    token = _guard.set(_Guard())
    try:
        yield
    finally:
        _guard.reset(token)


def protect_inputs(*paths: Path | str | None) -> None:
    """Declare files or folders this command reads: no output may replace or land inside one."""
    g = _current()
    new = tuple(Path(p).expanduser() for p in paths if p is not None)
    _guard.set(_Guard(g.inputs + new, g.allowed))


def allow_overwrite(path: Path) -> None:
    """The user asked for `path` to replace an input (--force); the write still goes atomically."""
    g = _current()
    _guard.set(_Guard(g.inputs, (*g.allowed, Path(path).expanduser())))


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except (OSError, ValueError):
        return None
    return st.st_dev, st.st_ino


def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # a symlink loop: compare the absolute spelling instead
        return Path(os.path.abspath(path))


def same_file(a: Path, b: Path) -> bool:
    """True for the same path spelled twice, through a link or `..`, or a hard link."""
    if _resolved(a) == _resolved(b):
        return True
    ia = _identity(a)
    return ia is not None and ia == _identity(b)


def _clashing_input(out: Path, inputs: Iterable[Path]) -> Path | None:
    target = _resolved(out)
    for src in inputs:
        if same_file(out, src):
            return src
        if src.is_dir() and target.is_relative_to(_resolved(src)):
            return src
    return None


def _is_allowed(out: Path) -> bool:
    return any(same_file(out, a) for a in _current().allowed)


def check_output(
    out: Path,
    *,
    inputs: Iterable[Path | None] = (),
    needed_bytes: int = 0,
    folder: bool = False,
    force: bool = False,
) -> Path:
    """Refuse an output that would replace an input or cannot be written, before any work.

    folder: the output is a directory written whole (an ONNX model), which must not exist yet.
    force: the user allowed this output to replace an input (it is remembered for the writers).
    """
    out = Path(out).expanduser()
    given = [Path(p).expanduser() for p in inputs if p is not None]
    clash = _clashing_input(out, [*_current().inputs, *given])
    if clash is not None and not (force or _is_allowed(out)):
        raise OutputPathError(
            f"the output {out} is an input of this command ({clash}); writing it would destroy it",
            hint="Choose another output path (or --force where the command offers it).",
        )
    if force and clash is not None:
        allow_overwrite(out)
    _check_place(out, folder, needed_bytes)
    remove_stale_partials(out)
    return out


def _check_place(out: Path, folder: bool, needed_bytes: int) -> None:
    parent = out.parent
    if folder and out.exists():
        raise OutputPathError(f"{out} already exists", hint="Remove it or choose another name.")
    if not folder and out.is_dir():
        raise OutputPathError(f"{out} is a directory", hint="Give a file name as the output.")
    if out.exists() and not out.is_file():
        raise OutputPathError(
            f"{out} is not a regular file (a FIFO or a device)", hint="Give a file name."
        )
    if not parent.is_dir():
        raise OutputPathError(
            f"the output folder {parent} does not exist", hint="Create it first, or fix the path."
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputPathError(
            f"cannot write to {parent}", hint="Choose an output path in a folder you can write."
        )
    free = shutil.disk_usage(parent).free
    if needed_bytes > free:
        raise OutputPathError(
            f"not enough disk space in {parent}: need {needed_bytes / 2**20:,.0f} MiB, "
            f"{free / 2**20:,.0f} MiB free",
            hint="Free some space or write the output elsewhere.",
        )


def partial_path(out: Path) -> Path:
    """Where `out` is written before the rename: hidden, beside it (same file system)."""
    return out.parent / f".{out.name}.{os.getpid()}{PARTIAL_SUFFIX}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # someone else's process: leave its file alone
    return True


def remove_stale_partials(out: Path) -> list[Path]:
    """Delete `.NAME.PID.partial` (and `.NAME.PID.partial.*`) left by runs that were killed:
    their process is gone."""
    removed: list[Path] = []
    prefix = f".{out.name}."
    try:  # also the stages a writer keeps beside its partial (`.NAME.PID.partial.q`)
        candidates = list(out.parent.glob(f"{glob_escape(prefix)}*{PARTIAL_SUFFIX}*"))
    except OSError:
        return removed
    for p in candidates:
        pid, found, _ = p.name[len(prefix) :].partition(PARTIAL_SUFFIX)
        if not found or not pid.isdigit() or int(pid) == os.getpid() or _pid_alive(int(pid)):
            continue
        with contextlib.suppress(OSError):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
            removed.append(p)
    return removed


def glob_escape(text: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)


def disk_error(e: OSError, out: Path) -> OutputPathError:
    if e.errno == errno.ENOSPC:
        return OutputPathError(
            f"the disk filled up while writing {out}; nothing was kept",
            hint="Free some space or write the output elsewhere.",
        )
    return OutputPathError(f"could not write {out}: {e.strerror or e}")


def _discard(tmp: Path) -> None:
    with contextlib.suppress(OSError):
        if tmp.is_dir() and not tmp.is_symlink():
            shutil.rmtree(tmp)
        else:
            tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_output(
    out: Path, *, needed_bytes: int = 0, folder: bool = False, make_parent: bool = False
) -> Iterator[Path]:
    """Yield a temporary path to write `out` to (a file, or a folder to create when `folder`);
    rename it to `out` on success, delete it on any failure (Ctrl-C included)."""
    out = Path(out).expanduser()
    if make_parent:
        out.parent.mkdir(parents=True, exist_ok=True)
    check_output(out, needed_bytes=needed_bytes, folder=folder)
    tmp = partial_path(out)
    _discard(tmp)
    try:
        yield tmp
        if folder and out.exists():
            raise OutputPathError(f"{out} appeared while it was being written; nothing replaced")
        os.replace(tmp, out)
    except OSError as e:
        raise disk_error(e, out) from None
    finally:
        _discard(tmp)


def write_bytes(out: Path, data: bytes, *, make_parent: bool = False) -> Path:
    with atomic_output(out, needed_bytes=len(data), make_parent=make_parent) as tmp:
        tmp.write_bytes(data)
    return Path(out).expanduser()


def write_text(out: Path, text: str, *, make_parent: bool = False) -> Path:
    return write_bytes(out, text.encode("utf-8"), make_parent=make_parent)


def write_json(out: Path, doc: Any, *, indent: int | None = 1, make_parent: bool = False) -> Path:
    """JSON with NaN refused: `NaN` is not JSON, and other programs read these files."""
    try:
        text = json.dumps(doc, indent=indent, default=str, allow_nan=False)
    except ValueError as e:
        raise OutputPathError(f"cannot write {out}: {e}") from None
    return write_text(out, text + "\n", make_parent=make_parent)
