"""Adapters on live llama.cpp contexts: LoRA files at a scale, and control vectors.

Capability.ADAPTERS. A LoRA adapter is loaded once per file through llama.cpp's own loader
(`llama_adapter_lora_init`, the code path `llama-cli --lora-scaled` uses) and then only its scale
changes; llama.cpp keeps the adapter list per context, so a change costs nothing until the next
decode. A runtime generates on one context and scores on others (scoring.py opens its own), and
every one of them must see the same adapters: ContextAdapters holds what is set and applies it to
each context attached. After any change the Llama object's cached prompt is stale (it was
computed under the old weights), so it is reset and the next generation re-evaluates its prompt.
"""

from __future__ import annotations

import ctypes
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.backends.base import FloatArray
from edgekit.backends.llama_cpp.quiet import quietly
from edgekit.errors import AdapterFileError, RuntimeBackendError

LoraKey = tuple[Path, int, int]


def _set_control(ctx: Any, matrix: FloatArray | None) -> None:
    """Add matrix[i] to block i's output on ctx (row 0 is ignored, as in llama.cpp)."""
    import llama_cpp

    rows = (
        np.array([], dtype=np.int64)
        if matrix is None
        else np.nonzero(np.abs(matrix[1:]).sum(axis=1))[0] + 1
    )
    if matrix is None or rows.size == 0:
        llama_cpp.llama_set_adapter_cvec(ctx, None, 0, 0, -1, -1)
        return
    # llama.cpp's buffer starts at block 1: offset n_embd * (il - 1) holds block il.
    data = np.ascontiguousarray(matrix[1:], dtype=np.float32)
    ptr = data.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
    n_embd = int(matrix.shape[1])
    rc = llama_cpp.llama_set_adapter_cvec(
        ctx, ptr, data.size, n_embd, int(rows.min()), int(rows.max())
    )
    if rc != 0:
        raise RuntimeBackendError(f"llama.cpp refused the control vector (code {rc})")


class ContextAdapters:
    """The LoRA adapters loaded on one model, and the adapter and control vector in force on
    the Llama object's context and every context attached.

    Loaded adapters are freed with the model (llama.cpp owns them from then on).
    """

    def __init__(self, llm: Any) -> None:
        import llama_cpp

        self.lib = llama_cpp
        self.llm = llm
        self._loaded: dict[LoraKey, Any] = {}
        self._attached: list[Any] = []
        self.active: tuple[LoraKey, float] | None = None
        self.control: FloatArray | None = None

    def contexts(self) -> list[Any]:
        return [self.llm.ctx, *self._attached]

    def attach(self, ctx: Any) -> None:
        """Give a new context what the others have now; later changes reach it too."""
        self._attached.append(ctx)
        self._apply_lora(ctx)
        if self.control is not None:
            _set_control(ctx, self.control)

    def detach(self, ctx: Any) -> None:
        self._attached = [c for c in self._attached if c is not ctx]

    @staticmethod
    def _key(path: Path) -> LoraKey:
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

    def set_lora(self, path: Path | None, scale: float) -> None:
        """Apply one adapter at `scale` (replacing any other); None or scale 0 clears."""
        want = None if path is None or scale == 0 else (self._key(path), float(scale))
        if want == self.active:
            return
        if path is not None and want is not None:
            self.load(path)
        self.active = want
        for ctx in self.contexts():
            self._apply_lora(ctx)
        self.llm.reset()

    def _apply_lora(self, ctx: Any) -> None:
        if self.active is None:
            rc = self.lib.llama_set_adapters_lora(ctx, None, 0, None)
        else:
            key, scale = self.active
            handles = (self.lib.llama_adapter_lora_p_ctypes * 1)(self._loaded[key])
            scales = (ctypes.c_float * 1)(scale)
            rc = self.lib.llama_set_adapters_lora(ctx, handles, 1, scales)
        if rc != 0:
            self.active = None
            raise RuntimeBackendError(f"llama.cpp refused the LoRA adapter (code {rc})")

    def set_control(self, matrix: FloatArray | None) -> None:
        """Add matrix[i] to block i's output from now on; None (or all zeros) clears."""
        for ctx in self.contexts():
            _set_control(ctx, matrix)
        self.control = None if matrix is None else np.array(matrix, dtype=np.float32)
        self.llm.reset()
