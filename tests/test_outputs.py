"""Issue 34, item 1: one guard for every output a command writes (edgekit.outputs)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edgekit.errors import OutputPathError
from edgekit.outputs import (
    atomic_output,
    check_output,
    command_scope,
    partial_path,
    protect_inputs,
    write_json,
    write_text,
)


def _spellings(src: Path, tmp_path: Path) -> list[Path]:
    """The same file under every name that reaches it."""
    (tmp_path / "sub").mkdir()
    link = tmp_path / "link.json"
    link.symlink_to(src)
    hard = tmp_path / "hard.json"
    os.link(src, hard)
    return [src, tmp_path / "sub" / ".." / src.name, link, hard, Path(os.path.relpath(src))]


def test_an_input_is_never_an_output_whatever_its_spelling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    src = tmp_path / "model.gguf"
    src.write_bytes(b"precious")
    for out in _spellings(src, tmp_path):
        with pytest.raises(OutputPathError, match="is an input"):
            check_output(out, inputs=[src])
        with command_scope():
            protect_inputs(src)
            with pytest.raises(OutputPathError, match="is an input"):
                write_text(out, "{}")
    assert src.read_bytes() == b"precious"


def test_declared_inputs_are_forgotten_after_the_command(tmp_path: Path) -> None:
    src = tmp_path / "s.json"
    src.write_text("{}")
    with command_scope():
        protect_inputs(src)
        with pytest.raises(OutputPathError):
            write_json(src, {"a": 1})
    write_json(src, {"a": 1})
    assert json.loads(src.read_text()) == {"a": 1}


def test_an_output_inside_an_input_folder_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "hf"
    folder.mkdir()
    with pytest.raises(OutputPathError):
        check_output(folder / "out.gguf", inputs=[folder])


def test_force_lets_the_named_output_replace_the_input_atomically(tmp_path: Path) -> None:
    src = tmp_path / "m.gguf"
    src.write_bytes(b"old")
    with command_scope():
        protect_inputs(src)
        check_output(src, force=True)
        write_text(src, "new")  # a deep writer later: allowed because the user said --force
    assert src.read_text() == "new"


@pytest.mark.parametrize(
    ("where", "needle"),
    [("missing/o.gguf", "does not exist"), (".", "is a directory")],
)
def test_unwritable_places_are_refused_before_any_work(
    tmp_path: Path, where: str, needle: str
) -> None:
    with pytest.raises(OutputPathError, match=needle):
        check_output(tmp_path / where)


def test_a_fifo_is_not_an_output(tmp_path: Path) -> None:
    fifo = tmp_path / "f"
    os.mkfifo(fifo)
    with pytest.raises(OutputPathError, match="not a regular file"):
        check_output(fifo)


def test_a_failed_write_leaves_the_old_file_and_no_partial(tmp_path: Path) -> None:
    out = tmp_path / "plan.json"
    out.write_text("old")
    with pytest.raises(RuntimeError), atomic_output(out) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert out.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan.json"]


def test_partials_of_a_killed_run_are_removed_by_the_next_write(tmp_path: Path) -> None:
    out = tmp_path / "o.gguf"
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    stale_file = out.parent / f".{out.name}.{int(dead.stdout)}.partial"
    stale_file.write_bytes(b"x" * 100)
    stale_stage = out.parent / f".{out.name}.{int(dead.stdout)}.partial.q"  # before metadata
    stale_stage.write_bytes(b"x" * 100)
    stale_dir = tmp_path / f".onnx.{int(dead.stdout)}.partial"
    stale_dir.mkdir()
    (stale_dir / "model.onnx").write_bytes(b"x")
    alive = out.parent / f".{out.name}.{os.getppid()}.partial"  # a running process: kept
    alive.write_bytes(b"y")
    write_text(out, "done")
    check_output(tmp_path / "onnx", folder=True)
    assert not stale_file.exists() and not stale_dir.exists() and not stale_stage.exists()
    assert alive.exists() and out.read_text() == "done"


def test_the_partial_is_hidden_beside_the_output(tmp_path: Path) -> None:
    p = partial_path(tmp_path / "m.gguf")
    assert p.parent == tmp_path and p.name.startswith(".m.gguf.") and p.name.endswith(".partial")


def test_nan_is_not_written_as_json(tmp_path: Path) -> None:
    with pytest.raises(OutputPathError, match="cannot write"):
        write_json(tmp_path / "s.json", {"bias": float("nan")})
    assert list(tmp_path.iterdir()) == []
