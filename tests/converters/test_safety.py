"""Issue #14, findings 1 and 8: the source is never overwritten, --json stays clean on stderr,
and a full disk is reported against the output the user named, not a hidden temporary file."""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import signal
from collections import namedtuple
from pathlib import Path

import pytest
import typer
from gguf import LlamaFileType
from typer.testing import CliRunner

from edgekit.backends.llama_cpp import quantize
from edgekit.errors import OutputPathError
from tests.fixtures.convert import synthetic_profile, tiny_base_gguf  # noqa: F401

pytestmark = pytest.mark.timeout(300)


def _cli() -> typer.Typer:
    from edgekit.cli.convert import convert_command

    app = typer.Typer()
    app.command("convert")(convert_command)
    app.command("other")(lambda: None)
    return app


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("spelling", ["same", "dot-slash", "symlink", "hardlink"])
def test_convert_refuses_to_overwrite_its_source(
    tiny_base_gguf: Path,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    spelling: str,
) -> None:
    src = tmp_path / "m.gguf"
    shutil.copy(tiny_base_gguf, src)
    before = _sha(src)
    monkeypatch.chdir(tmp_path)
    out = {"same": src, "dot-slash": Path("./m.gguf"), "symlink": tmp_path / "l.gguf"}.get(
        spelling, tmp_path / "h.gguf"
    )
    if spelling == "symlink":
        out.symlink_to(src)
    elif spelling == "hardlink":
        os.link(src, out)
    scores = synthetic_profile().save(tmp_path / "s.json")
    args = ["convert", str(src), "-o", str(out), "--scores", str(scores), "--threshold", "100"]
    r = CliRunner().invoke(_cli(), [*args, "--json", "--no-eval"])
    assert r.exit_code == 2, r.output
    assert json.loads(r.stdout)["error"] == "OutputPathError"
    assert _sha(src) == before


def test_force_allows_replacing_the_source(
    tiny_base_gguf: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    src = tmp_path / "m.gguf"
    shutil.copy(tiny_base_gguf, src)
    scores = synthetic_profile().save(tmp_path / "s.json")
    args = ["convert", str(src), "-o", str(src), "--scores", str(scores), "--threshold", "100"]
    r = CliRunner().invoke(_cli(), [*args, "--json", "--no-eval", "--force"])
    assert r.exit_code == 0, r.output
    assert src.stat().st_size < tiny_base_gguf.stat().st_size  # quantized in place, atomically


def test_enospc_inside_llama_cpp_names_the_output(
    tiny_base_gguf: Path,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """llama.cpp's own write really fails (a file-size limit), and the disk then reads as full:
    the message must name o.gguf, not llama.cpp's hidden temporary file."""
    out = tmp_path / "o.gguf"
    usage = namedtuple("usage", "total used free")
    calls = {"n": 0}

    def disk_usage(path: object) -> object:
        calls["n"] += 1
        return usage(2**40, 0, 2**40 if calls["n"] == 1 else 0)

    monkeypatch.setattr(shutil, "disk_usage", disk_usage)
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    old_limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, old_limit[1]))
    try:
        with pytest.raises(OutputPathError) as e:
            quantize.write_gguf(tiny_base_gguf, out, None, LlamaFileType.MOSTLY_Q8_0)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, old_limit)
        signal.signal(signal.SIGXFSZ, old_handler)
    assert "disk filled up" in e.value.message
    assert str(out) in e.value.message and ".partial" not in e.value.message
    assert list(tmp_path.iterdir()) == []


def test_convert_json_prints_no_progress_bar(tmp_path: Path) -> None:
    """Calibration loads the GGUF through transformers, whose tqdm bar went to stderr."""
    pytest.importorskip("torch")
    from tests.fixtures.tiny_models import write_tiny_llama

    src = write_tiny_llama(tmp_path / "tiny.gguf", n_layers=2, n_embd=256, n_ff=512)
    out = tmp_path / "o.gguf"
    args = ["convert", str(src), "-o", str(out), "--threshold", "100", "--json", "--no-eval"]
    r = CliRunner().invoke(_cli(), args)
    assert r.exit_code == 0, r.output
    json.loads(r.stdout)
    assert "%|" not in r.stderr and "it/s" not in r.stderr, r.stderr
