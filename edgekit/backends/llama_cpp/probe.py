"""Crashes in llama.cpp caught in a child process before they take the user's process down.

Two probes, each run once and remembered in the cache:
- the BUILD: a `pip install llama-cpp-python` built with -march=native on a CPU with Intel AMX
  segfaults on the first decode (ggml_backend_amx_mul_mat). A child loads the embedded default
  model (never the user's file, so a damaged file is not blamed on the build) and decodes two
  tokens; a clean exit is remembered per build (library files' size and mtime).
- the MODEL: llama.cpp's loader ends the process with SIGABRT on files it cannot handle
  (GGML_ASSERT, or a C++ exception thrown through its C API). edgekit/gguf/values.py refuses the
  classes known to do that before anything loads; as the last line of defence a file not seen
  before (keyed by path, size and mtime) is loaded, tokenized with and decoded in a child, and a
  crash there becomes "llama.cpp aborted on this model: ...".

ggml prints a gdb backtrace of an abort (~20 KB, on stdout too) unless GGML_NO_BACKTRACE is set:
edgekit/backends/llama_cpp/__init__.py sets it for this process and its children.

Run as `python -m edgekit.backends.llama_cpp.probe {build|model} MODEL THREADS` (the child).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import platform
import signal
import subprocess
import sys
from pathlib import Path

from edgekit.backends.llama_cpp.build import LLAMA_CPP_PYTHON_VERSION
from edgekit.devices.builds import VARIANTS
from edgekit.errors import (
    BrokenBuildError,
    DefaultModelError,
    EdgekitError,
    ModelLoadError,
    RuntimeBackendError,
)
from edgekit.paths import cache_dir

PROBE_TIMEOUT_S = 300
# A model probe reads the whole file once: a minute plus a slow disk's time for its bytes.
MODEL_PROBE_BASE_S = float(os.environ.get("EDGEKIT_MODEL_PROBE_TIMEOUT", "60"))
MODEL_PROBE_BYTES_PER_S = 20 * 2**20
REBUILD_HINT = (
    "Rebuild llama.cpp with portable flags: EDGEKIT_LLAMA_VARIANT=avx2 bash scripts/setup.sh, or "
    f"CMAKE_ARGS='{' '.join(VARIANTS['avx2'])}' pip install --force-reinstall --no-cache-dir "
    f"llama-cpp-python=={LLAMA_CPP_PYTHON_VERSION}"
)
MODEL_HINT = (
    "The file is damaged or was written by a broken converter: download or convert it again."
)
# Text that reaches the tokenizer's byte fallback, multi-byte characters and a newline.
PROBE_TEXT = "Hello, world!\n\t\u00e9t\u00e9 \u4e2d\u6587 \U0001f600 <|x|> 123"
# Signals of a build that does not fit the CPU, not of a damaged file.
_BUILD_SIGNALS = frozenset({signal.SIGILL, signal.SIGBUS})


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


def probe_command(kind: str, model: Path, threads: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "edgekit.backends.llama_cpp.probe",
        kind,
        str(model),
        str(threads),
    ]


def _default_model() -> Path | None:
    from edgekit.default_model import fetch_default_model

    try:
        return fetch_default_model()
    except (DefaultModelError, OSError):  # not installed, or no room to assemble it
        return None


def ensure_build_works(
    threads: int, command: list[str] | None = None, model: Path | None = None
) -> None:
    """Raise BrokenBuildError if decoding the default model (or `model`, for tests) crashes in a
    child process; cached once it passed. Without the default model installed the build is not
    probed here, and ensure_model_loads tells a build's crash (SIGILL) from a file's."""
    marker = cache_dir() / "build-probe" / f"{build_key()}.ok"
    if command is None and marker.exists():
        return
    if command is None:
        model = model or _default_model()
        if model is None:
            return
        command = probe_command("build", model, threads)
    result = _run(command, PROBE_TIMEOUT_S, "llama.cpp's test decode", REBUILD_HINT)
    if result.returncode < 0:
        name = signal.Signals(-result.returncode).name
        raise BrokenBuildError(
            f"llama.cpp crashed ({name}) on a test decode: this build of llama-cpp-python does "
            "not work on this CPU (a -march=native build that enables Intel AMX does this)",
            hint=REBUILD_HINT,
        )
    if result.returncode != 0:
        raise RuntimeBackendError(
            "llama.cpp failed a test decode: " + " | ".join(_tail(result.stderr)),
            hint=REBUILD_HINT,
        )
    _remember(marker)


def model_key(model: Path) -> str:
    st = model.stat()
    raw = f"{model.resolve()}:{st.st_size}:{st.st_mtime_ns}:{build_key()}"
    return hashlib.sha256(raw.encode()).hexdigest()[:24]


def ensure_model_loads(model: Path, threads: int, command: list[str] | None = None) -> None:
    """Load, tokenize with and decode a file not seen before in a child process (module doc).
    A crash or a hang there raises ModelLoadError; an ordinary load failure is left to the
    in-process load, whose error says why."""
    marker = cache_dir() / "model-probe" / f"{model_key(model)}.ok"
    if command is None and marker.exists():
        return
    limit = MODEL_PROBE_BASE_S + model.stat().st_size / MODEL_PROBE_BYTES_PER_S
    result = _run(
        command or probe_command("model", model, threads),
        limit,
        f"llama.cpp's trial load of {model.name}",
        MODEL_HINT,
        error=ModelLoadError,
    )
    if result.returncode < 0:
        sig = signal.Signals(-result.returncode)
        if sig in _BUILD_SIGNALS:
            raise BrokenBuildError(
                f"llama.cpp crashed ({sig.name}) loading {model.name}: this build of "
                "llama-cpp-python does not work on this CPU",
                hint=REBUILD_HINT,
            )
        why = " | ".join([sig.name, *_tail(result.stderr, only_errors=True)])
        raise ModelLoadError(
            f"llama.cpp aborted on this model: {model.name} ({why})", hint=MODEL_HINT
        )
    if result.returncode == 0:
        _remember(marker)


def _remember(marker: Path) -> None:
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.touch()


def _tail(stderr: str, only_errors: bool = False, n: int = 3) -> list[str]:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    if only_errors:
        marks = ("GGML_ASSERT", "error", "what()", "terminate", "abort", "failed")
        lines = [line for line in lines if any(m in line for m in marks)]
    return [line[:200] for line in lines[-n:]]


def _run(
    command: list[str],
    timeout: float,
    what: str,
    hint: str,
    error: type[EdgekitError] = RuntimeBackendError,
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GGML_NO_BACKTRACE": "1"}
    try:
        return subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            env=env,
        )
    except subprocess.TimeoutExpired:
        raise error(f"{what} did not finish in {timeout:.0f} s", hint=hint) from None


def _child(kind: str, model: str, threads: int) -> None:
    from llama_cpp import Llama

    llm = Llama(model, n_ctx=64, n_batch=32, n_threads=threads, verbose=False)
    tokens = llm.tokenize(b"Hello", add_bos=True)
    if kind == "model":
        # What run does next, so that what aborts there aborts here: tokenizing text that
        # needs byte tokens, and turning every token of the vocabulary back into text.
        tokens = llm.tokenize(PROBE_TEXT.encode(), add_bos=True, special=True)[:32] or tokens
        llm.detokenize(list(range(llm.n_vocab())), special=True)
    for i, _ in enumerate(llm.generate(tokens, temp=0.0)):
        if i >= 1:
            break


if __name__ == "__main__":
    _child(sys.argv[1], sys.argv[2], int(sys.argv[3]))
