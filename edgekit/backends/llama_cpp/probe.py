"""Detect a llama.cpp build that crashes on this CPU before it takes the user's process down.

A `pip install llama-cpp-python` built with -march=native on a CPU with Intel AMX segfaults on
the first decode (ggml_backend_amx_mul_mat). A crash cannot be caught in-process, so the first
time a build is used a child process loads the model and decodes two tokens; a clean exit is
remembered per build (library files' size and mtime), so the probe costs one load per build.

Run as `python -m edgekit.backends.llama_cpp.probe MODEL THREADS` (the child's side).
"""

from __future__ import annotations

import hashlib
import importlib.util
import platform
import signal
import subprocess
import sys
from pathlib import Path

from edgekit.backends.llama_cpp.build import LLAMA_CPP_PYTHON_VERSION
from edgekit.devices.builds import VARIANTS
from edgekit.errors import BrokenBuildError, RuntimeBackendError
from edgekit.paths import cache_dir

PROBE_TIMEOUT_S = 300
REBUILD_HINT = (
    "Rebuild llama.cpp with portable flags: EDGEKIT_LLAMA_VARIANT=avx2 bash scripts/setup.sh, or "
    f"CMAKE_ARGS='{' '.join(VARIANTS['avx2'])}' pip install --force-reinstall --no-cache-dir "
    f"llama-cpp-python=={LLAMA_CPP_PYTHON_VERSION}"
)


def build_key() -> str:
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or spec.origin is None:
        raise RuntimeBackendError("llama-cpp-python is not installed", hint=REBUILD_HINT)
    h = hashlib.sha256(platform.machine().encode())
    for lib in sorted(Path(spec.origin).parent.rglob("*")):
        if lib.suffix in {".so", ".dylib", ".dll"} or ".so." in lib.name:
            st = lib.stat()
            h.update(f"{lib.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def probe_command(model: Path, threads: int) -> list[str]:
    return [sys.executable, "-m", "edgekit.backends.llama_cpp.probe", str(model), str(threads)]


def ensure_build_works(model: Path, threads: int, command: list[str] | None = None) -> None:
    """Raise BrokenBuildError if decoding crashes in a child process; cached once it passed."""
    marker = cache_dir() / "build-probe" / f"{build_key()}.ok"
    if command is None and marker.exists():
        return
    result = _run(command or probe_command(model, threads))
    if result.returncode < 0:
        name = signal.Signals(-result.returncode).name
        raise BrokenBuildError(
            f"llama.cpp crashed ({name}) on a test decode: this build of llama-cpp-python does "
            "not work on this CPU (a -march=native build that enables Intel AMX does this)",
            hint=REBUILD_HINT,
        )
    if result.returncode != 0:
        tail = result.stderr.strip().splitlines()[-3:]
        raise RuntimeBackendError(
            "llama.cpp failed a test decode: " + " | ".join(tail), hint=REBUILD_HINT
        )
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.touch()


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=PROBE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise RuntimeBackendError(
            f"llama.cpp's test decode did not finish in {PROBE_TIMEOUT_S} s", hint=REBUILD_HINT
        ) from None


def _child(model: str, threads: int) -> None:
    from llama_cpp import Llama

    llm = Llama(model, n_ctx=64, n_batch=32, n_threads=threads, verbose=False)
    tokens = llm.tokenize(b"Hello", add_bos=True)
    for i, _ in enumerate(llm.generate(tokens, temp=0.0)):
        if i >= 1:
            break


if __name__ == "__main__":
    _child(sys.argv[1], int(sys.argv[2]))
