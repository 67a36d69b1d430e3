"""The GGUF writer: llama.cpp's own C++ quantizer, driven per tensor from a plan.

Every quantizable tensor gets an anchored `tt_overrides` pattern naming the type the plan chose,
so llama.cpp's built-in mix heuristics never decide anything; the file is then read back and each
tensor's type checked against the plan. Output goes to a hidden temporary file beside the target
and is renamed into place only when complete: an error or Ctrl-C leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import re
import shutil
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gguf import GGMLQuantizationType, LlamaFileType

from edgekit.errors import ConversionError
from edgekit.gguf.metadata import MetaValue, add_metadata
from edgekit.gguf.reader import read_header
from edgekit.outputs import atomic_output as atomic_output  # re-exported for the converters
from edgekit.outputs import check_output, partial_path

Q = GGMLQuantizationType
F = LlamaFileType

Progress = Callable[[int, int, str], None]  # (done, total, tensor name)
_PROGRESS_LINE = re.compile(rb"\[\s*(\d+)/\s*(\d+)\]\s+(\S+)")


@dataclass(frozen=True)
class QuantizeRun:
    """How llama.cpp's quantizer runs: its thread count and who hears of each tensor done."""

    threads: int = 2
    progress: Progress | None = None


def temp_path_for(out: Path) -> Path:
    return partial_path(out)


def check_writable(out: Path, needed_bytes: int, inputs: Iterable[Path] = ()) -> None:
    """Refuse early, before any work: the output is an input, unwritable, or will not fit."""
    check_output(out, inputs=inputs, needed_bytes=needed_bytes)


def overrides_for(types: Mapping[str, GGMLQuantizationType]) -> list[tuple[str, int]]:
    """One anchored alternation per type: llama.cpp tries every pattern on every tensor, so a
    pattern per tensor would cost (tensors x tensors) regex compilations."""
    by_type: dict[GGMLQuantizationType, list[str]] = {}
    for name, t in types.items():
        by_type.setdefault(t, []).append(re.escape(name))
    return [(f"^({'|'.join(names)})$", int(t)) for t, names in by_type.items()]


@contextlib.contextmanager
def _llama_log(progress: Progress | None, lib: Any) -> Iterator[None]:
    """Route llama.cpp's log (one line per tensor while quantizing) into `progress`."""

    def on_log(level: int, text: bytes, _: ctypes.c_void_p) -> None:
        m = _PROGRESS_LINE.search(text or b"")
        if m and progress is not None:
            progress(int(m[1]), int(m[2]), m[3].decode(errors="replace"))

    callback = lib.llama_log_callback(on_log)
    lib.llama_log_set(callback, ctypes.c_void_p(0))
    try:
        yield
    finally:
        from llama_cpp._logger import llama_log_callback

        lib.llama_log_set(llama_log_callback, ctypes.c_void_p(0))


def _params(
    lib: Any, ftype: LlamaFileType, types: Mapping[str, Q] | None, threads: int
) -> tuple[Any, Any]:
    """The quantize params, and the override array they point to (keep it alive meanwhile)."""
    arr = None
    params = lib.llama_model_quantize_default_params()
    params.ftype = int(ftype)
    params.allow_requantize = True
    params.nthread = threads
    if types:
        pats = overrides_for(types)
        arr = (lib.llama_model_tensor_override * (len(pats) + 1))()
        for i, (pattern, t) in enumerate(pats):
            arr[i].pattern = pattern.encode()
            arr[i].type = t
        arr[len(pats)].pattern = None  # NULL-terminated
        params.tt_overrides = ctypes.cast(arr, type(params.tt_overrides))
    return params, arr


def run_quantize(
    base: Path,
    out: Path,
    ftype: LlamaFileType,
    types: Mapping[str, GGMLQuantizationType] | None = None,
    threads: int = 2,
    progress: Progress | None = None,
) -> None:
    """llama_model_quantize in a worker thread, so Ctrl-C reaches Python while it runs."""
    from edgekit.backends.llama_cpp.lib import import_llama_cpp

    lib = import_llama_cpp()
    params, _keepalive = _params(lib, ftype, types, threads)
    result: list[int] = []
    worker = threading.Thread(
        target=lambda: result.append(
            lib.llama_model_quantize(str(base).encode(), str(out).encode(), ctypes.byref(params))
        ),
        daemon=True,  # on Ctrl-C the process may exit while llama.cpp still writes the temp file
    )
    with _llama_log(progress, lib):
        worker.start()
        while worker.is_alive():
            worker.join(0.1)
    if not result or result[0] != 0:
        if out.exists() and shutil.disk_usage(out.parent).free < 2**20:
            # No file name here: `out` is the hidden temporary file, and atomic_output turns
            # this into a message that names the real output.
            raise OSError(errno.ENOSPC, "no space left on the device")
        raise ConversionError(
            f"llama.cpp's quantizer failed on {base.name} (code {result[0] if result else '?'})",
            hint="Run with EDGEKIT_DEBUG=1 and --verbose to see llama.cpp's log.",
        )


def write_gguf(
    base: Path,
    out: Path,
    types: Mapping[str, GGMLQuantizationType] | None,
    ftype: LlamaFileType,
    metadata: Mapping[str, MetaValue] | None = None,
    run: QuantizeRun = QuantizeRun(),
    expected_bytes: int = 0,
) -> Path:
    """Quantize `base` to `out` with exactly `types` (None: llama.cpp's stock mix for `ftype`)."""
    read_header(base)  # a corrupt or truncated base fails here with a clear error
    check_writable(out, expected_bytes)
    with atomic_output(out) as tmp:
        stage = tmp.with_name(tmp.name + ".q") if metadata else tmp
        try:
            run_quantize(base, stage, ftype, types, run.threads, run.progress)
            if metadata:
                add_metadata(stage, tmp, metadata)
        finally:
            if stage != tmp:
                stage.unlink(missing_ok=True)
        if types:
            verify_types(tmp, types)
    return out


def verify_types(path: Path, types: Mapping[str, GGMLQuantizationType]) -> None:
    got = {t.name: t.ggml_type for t in read_header(path).tensors}
    wrong = [f"{n}: {got.get(n)} != {t.name}" for n, t in types.items() if got.get(n) != t]
    if wrong:
        raise ConversionError(
            f"llama.cpp wrote {len(wrong)} tensor(s) in another type than planned: "
            + "; ".join(wrong[:5]),
            hint="This llama.cpp build may handle tensor-type overrides differently.",
        )
