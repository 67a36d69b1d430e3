"""The last line of defence against files llama.cpp aborts on (issue 34, item 2): a file not seen
before is loaded in a child first, and a crash there is one clear error with exit 2, never a
SIGABRT of edgekit itself, a gdb backtrace on stdout, or a "rebuild llama.cpp" hint.

The header checks (tests/gguf/test_loader_classes.py) refuse the known classes before this
point, so these tests switch the vocabulary check off to hand llama.cpp a file it aborts on."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgekit.backends.llama_cpp import probe
from edgekit.cli import app
from edgekit.default_model import default_model_path, is_fetched
from edgekit.errors import ModelLoadError
from tests.fixtures.fuzz_harness import load_seed
from tests.fixtures.mutators import loader_class_edits, write_model


@pytest.fixture
def cold_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty edgekit cache that still holds the default model (linked, not assembled)."""
    if not is_fetched():
        pytest.skip("the default model is not installed (edgekit model fetch)")
    real = default_model_path()
    cache = tmp_path / "cache"
    (cache / "models").mkdir(parents=True)
    for f in (real, real.with_name(real.name + ".sha256")):
        (cache / "models" / f.name).symlink_to(f)
    monkeypatch.setenv("EDGEKIT_CACHE_DIR", str(cache))
    yield cache


def _aborting_file(seed: Path, tmp_path: Path, name: str = "duplicate_token") -> Path:
    lay, header = load_seed(seed)
    edits = dict(loader_class_edits(lay, random.Random(0)))
    path = tmp_path / f"{name}.gguf"
    write_model(path, edits[name], seed.read_bytes()[len(header) :], lay.data_size)
    return path


def test_the_backend_process_and_its_children_print_no_backtraces() -> None:
    assert os.environ.get("GGML_NO_BACKTRACE") == "1"  # set by importing the back end


def test_an_abort_in_the_trial_load_is_one_clear_error(
    tiny_model: Path, tmp_path: Path, cold_cache: Path
) -> None:
    bad = _aborting_file(tiny_model, tmp_path)
    with pytest.raises(ModelLoadError, match=r"llama\.cpp aborted on this model") as e:
        probe.ensure_model_loads(bad, 1)
    assert "SIGABRT" in e.value.message and "rebuild" not in (e.value.hint or "").lower()
    assert not (cold_cache / "model-probe").exists()  # not remembered as good


def test_a_good_file_is_tried_once(tiny_model: Path, cold_cache: Path) -> None:
    probe.ensure_model_loads(tiny_model, 1)
    markers = list((cold_cache / "model-probe").glob("*.ok"))
    assert len(markers) == 1
    failing = [sys.executable, "-c", "raise SystemExit(3)"]
    probe.ensure_model_loads(tiny_model, 1)  # remembered: no second child
    os.utime(tiny_model)  # a changed file (new mtime) is tried again
    probe.ensure_model_loads(tiny_model, 1, command=failing)  # a plain failure is not a crash
    assert len(list((cold_cache / "model-probe").glob("*.ok"))) == 1


def test_a_hanging_trial_load_is_stopped(
    tiny_model: Path, cold_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(probe, "MODEL_PROBE_BASE_S", 1.0)
    spin = [sys.executable, "-c", "while True: pass"]
    with pytest.raises(ModelLoadError, match="did not finish"):
        probe.ensure_model_loads(tiny_model, 1, command=spin)


def test_run_on_a_file_llama_cpp_aborts_on_is_blamed_on_the_file_with_json(
    tiny_model: Path, tmp_path: Path, cold_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a cold cache the build is probed with the default model, not the user's file, so the
    crash is the file's; stdout holds one JSON object and no backtrace."""
    bad = _aborting_file(tiny_model, tmp_path)
    monkeypatch.setattr("edgekit.gguf.reader.check_vocab", lambda *_: None)
    result = CliRunner().invoke(app, ["run", str(bad), "-p", "hi", "-n", "2", "--json"])
    assert result.exit_code == 2, result.output
    error = json.loads(result.stdout)
    assert error["error"] == "ModelLoadError"
    assert error["message"].startswith("llama.cpp aborted on this model")
    assert "rebuild" not in error["hint"].lower()
    assert list((cold_cache / "build-probe").glob("*.ok")), "the build was probed and passed"


def test_an_abort_puts_no_backtrace_on_stdout(tiny_model: Path, tmp_path: Path) -> None:
    """ggml attaches gdb on an abort and printed ~11 KB of it on stdout here (breaking --json),
    unless GGML_NO_BACKTRACE is set, which importing the back end does for the process."""
    bad = _aborting_file(tiny_model, tmp_path, "zero_kv_heads")
    code = (
        "import sys, edgekit.backends.llama_cpp\n"
        "from edgekit.backends.llama_cpp.lib import import_llama_cpp\n"
        "llm = import_llama_cpp().Llama(sys.argv[1], n_ctx=64, verbose=False)\n"
        "llm.eval(llm.tokenize(b'hi'))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "GGML_NO_BACKTRACE"}
    child = subprocess.run(
        [sys.executable, "-c", code, str(bad)], capture_output=True, text=True, env=env
    )
    assert child.returncode == -signal.SIGABRT
    assert child.stdout == ""
