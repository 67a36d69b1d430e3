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
from tests.fixtures.convert import synthetic_profile

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
    tiny_base_gguf: Path,
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
    tiny_base_gguf: Path,
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
    tiny_base_gguf: Path,
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


# --- issue 34, item 1: every output, not only -o ------------------------------------------------


@pytest.mark.parametrize("recipe", [[], ["--threshold", "100"]], ids=["measured", "spike"])
@pytest.mark.parametrize("victim", ["source", "scores"])
def test_scores_out_never_replaces_an_input(
    tiny_base_gguf: Path,
    tmp_path: Path,
    recipe: list[str],
    victim: str,
) -> None:
    """`--scores-out SRC` replaced the model with a 319-byte JSON file (the guard knew only -o)."""
    src = tmp_path / "m.gguf"
    shutil.copy(tiny_base_gguf, src)
    scores = synthetic_profile().save(tmp_path / "s.json")
    before = {p: _sha(p) for p in (src, scores)}
    target = src if victim == "source" else scores
    link = tmp_path / "alias"
    link.symlink_to(target)
    args = ["convert", str(src), "--scores", str(scores), "--scores-out", str(link)]
    args += ["-o", str(tmp_path / "o.gguf"), "--dry-run", "--json", "--no-eval", *recipe]
    r = CliRunner().invoke(_cli(), args)
    assert r.exit_code == 2, r.output
    assert json.loads(r.stdout)["error"] == "OutputPathError"
    assert {p: _sha(p) for p in before} == before


def test_plan_beside_the_output_never_replaces_an_input(
    tiny_base_gguf: Path,
    tmp_path: Path,
) -> None:
    """The plan goes to OUT.plan.json: when that is the scores file, it must not be replaced."""
    src = tmp_path / "m.gguf"
    shutil.copy(tiny_base_gguf, src)
    scores = synthetic_profile().save(tmp_path / "o.plan.json")
    before = _sha(scores)
    args = ["convert", str(src), "--scores", str(scores), "--threshold", "100"]
    r = CliRunner().invoke(_cli(), [*args, "-o", str(tmp_path / "o.gguf"), "--json", "--no-eval"])
    assert r.exit_code == 2, r.output
    assert json.loads(r.stdout)["error"] == "OutputPathError"
    assert _sha(scores) == before
    assert not (tmp_path / "o.gguf").exists()  # refused before the model was written


@pytest.mark.parametrize("option", ["-o", "--scores-out"])
def test_a_missing_output_folder_is_refused_before_any_work(
    tiny_base_gguf: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    option: str,
) -> None:
    """Refused after 54 s of calibration before: now before the first step runs."""
    import edgekit.converters.gguf as pipeline

    def no_work(*args: object, **kwargs: object) -> None:
        raise AssertionError("work started before the output was checked")

    monkeypatch.setattr(pipeline, "base_gguf", no_work)
    src = tmp_path / "m.gguf"
    shutil.copy(tiny_base_gguf, src)
    missing = str(tmp_path / "no-such-folder" / "x")
    out = missing if option == "-o" else str(tmp_path / "o.gguf")
    args = ["convert", str(src), "-o", out, "--threshold", "100", "--json", "--no-eval"]
    if option == "--scores-out":
        args += ["--scores-out", missing]
    r = CliRunner().invoke(_cli(), args)
    assert r.exit_code == 2, r.output
    doc = json.loads(r.stdout)
    assert doc["error"] == "OutputPathError" and "does not exist" in doc["message"]
