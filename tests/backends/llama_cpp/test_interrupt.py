"""Ctrl-C during the measured convert's imatrix pass (issue 34, item 4): a real SIGINT to a child.

Before: the KeyboardInterrupt was raised inside ggml's eval callback, where ctypes prints it as
"ignored" and returns 0; the run went on and wrote its output with exit 0 (3 of 4 tries)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.fixtures.tiny_models import WORDS, write_tiny_llama

CHILD = """
import sys
from pathlib import Path
from edgekit.backends.llama_cpp.imatrix_collect import collect
text = Path(sys.argv[2]).read_text()
print("ready", flush=True)
try:
    out = collect(Path(sys.argv[1]), text, n_ctx=64, chunks=10**6, threads=1)
except KeyboardInterrupt:
    print("interrupted", flush=True)
    sys.exit(130)
print("finished", out.chunks, flush=True)
"""


def _start(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def test_sigint_inside_the_imatrix_pass_stops_it(tmp_path: Path) -> None:
    model = write_tiny_llama(tmp_path / "tiny.gguf")
    text = tmp_path / "text.txt"
    text.write_text(" ".join(WORDS * 4000))  # ~100k tokens: ~1,500 chunks, many seconds
    child = _start(["-c", CHILD, str(model), str(text)])
    assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    time.sleep(2.0)  # tokenized by now, deep in the decode loop and its callbacks
    assert child.poll() is None, child.communicate()
    sent = time.monotonic()
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=30)
    assert child.returncode == 130, (out, err)
    assert "interrupted" in out and "finished" not in out
    assert "ignored" not in err.lower() and "Traceback" not in err
    assert time.monotonic() - sent < 5


def test_ctrl_c_in_the_measured_convert_exits_130_and_leaves_nothing(tmp_path: Path) -> None:
    model = write_tiny_llama(tmp_path / "tiny.gguf")
    calib = tmp_path / "calib.txt"
    calib.write_text(" ".join(WORDS * 4000))
    out = tmp_path / "out" / "mixed.gguf"
    out.parent.mkdir()
    child = _start(
        ["-m", "edgekit", "convert", str(model), "--to", "gguf", "-o", str(out), "--calib-file",
         str(calib), "-t", "1"],
        env={"EDGEKIT_CACHE_DIR": str(tmp_path / "cache")},  # nothing measured is cached yet
    )  # fmt: skip
    assert child.stderr is not None
    for line in child.stderr:  # wait for the measured pass, then Ctrl-C inside it
        if "measuring" in line:
            break
    time.sleep(0.5)
    assert child.poll() is None, "the run ended before it could be interrupted"
    child.send_signal(signal.SIGINT)
    stdout, stderr = child.communicate(timeout=120)
    assert child.returncode == 130, (stdout, stderr)
    assert "Traceback" not in stderr and "ignored" not in stderr.lower()
    assert list(out.parent.iterdir()) == []
