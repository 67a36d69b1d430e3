"""Adapters on a live llama.cpp context: LoRA files at a scale, and control vectors.

Capability.ADAPTERS. A LoRA adapter is loaded once per file through llama.cpp's own loader
(`llama_adapter_lora_init`, the code path `llama-cli --lora-scaled` uses) and then only its scale
changes; llama.cpp keeps the adapter list per context, so a change costs nothing until the next
decode. After any change the Llama object's cached prompt is stale (it was computed under the old
weights), so it is reset and the next generation re-evaluates its prompt.
"""

from __future__ import annotations

import ctypes
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.backends.base import FloatArray
from edgekit.backends.llama_cpp.quiet import quietly
from edgekit.errors import AdapterFileError, RuntimeBackendError


def apply_control(llm: Any, matrix: FloatArray | None) -> None:
    """Add matrix[i] to block i's output from now on (row 0 is ignored, as in llama.cpp).

    None (or an all-zero matrix) clears the control vector.
    """
    import llama_cpp

    rows = (
        np.array([], dtype=np.int64)
        if matrix is None
        else np.nonzero(np.abs(matrix[1:]).sum(axis=1))[0] + 1
    )
    if matrix is None or rows.size == 0:
        llama_cpp.llama_set_adapter_cvec(llm.ctx, None, 0, 0, -1, -1)
        llm.reset()
        return
    # llama.cpp's buffer starts at block 1: offset n_embd * (il - 1) holds block il.
    data = np.ascontiguousarray(matrix[1:], dtype=np.float32)
    ptr = data.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
    n_embd = int(matrix.shape[1])
    rc = llama_cpp.llama_set_adapter_cvec(
        llm.ctx, ptr, data.size, n_embd, int(rows.min()), int(rows.max())
    )
    if rc != 0:
        raise RuntimeBackendError(f"llama.cpp refused the control vector (code {rc})")
    llm.reset()


class LoraSlots:
    """The LoRA adapters loaded on one model, and the scales set on one context.

    Loaded adapters are freed with the model (llama.cpp owns them from then on).
    """

    def __init__(self, llm: Any) -> None:
        import llama_cpp

        self.lib = llama_cpp
        self.llm = llm
        self._loaded: dict[tuple[Path, int, int], Any] = {}
        self.active: tuple[tuple[Path, int, int], float] | None = None

    @staticmethod
    def _key(path: Path) -> tuple[Path, int, int]:
        # A file rewritten in place (a new --mitigate, a calibration trial) is a new adapter:
        # keyed by path alone, the old tensors would stay applied.
        try:
            st = path.stat()
        except OSError as e:
            raise AdapterFileError(f"cannot read the LoRA adapter {path}: {e.strerror}") from e
        return path.resolve(), st.st_mtime_ns, st.st_size

    def load(self, path: Path) -> Any:
        key = self._key(path)
        if key not in self._loaded:
            adapter = quietly(
                lambda: self.lib.llama_adapter_lora_init(self.llm.model, str(key[0]).encode())
            )
            if not adapter:
                raise AdapterFileError(
                    f"llama.cpp could not load the LoRA adapter {path}",
                    hint="Run with --verbose to see llama.cpp's reason.",
                )
            self._loaded[key] = adapter
        return self._loaded[key]

    def set(self, path: Path | None, scale: float) -> None:
        """Apply one adapter at `scale` (replacing any other); None or scale 0 clears."""
        want = None if path is None or scale == 0 else (self._key(path), float(scale))
        if want == self.active:
            return
        if want is None or path is None:
            rc = self.lib.llama_set_adapters_lora(self.llm.ctx, None, 0, None)
        else:
            handles = (self.lib.llama_adapter_lora_p_ctypes * 1)(self.load(path))
            scales = (ctypes.c_float * 1)(want[1])
            rc = self.lib.llama_set_adapters_lora(self.llm.ctx, handles, 1, scales)
        if rc != 0:
            raise RuntimeBackendError(f"llama.cpp refused the LoRA adapter (code {rc})")
        self.active = want
        self.llm.reset()
