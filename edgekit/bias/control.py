"""Setting and clearing a control vector on a live llama.cpp context."""

from __future__ import annotations

import ctypes
from typing import TYPE_CHECKING, Any

import numpy as np

from edgekit.bias.steering import FloatArray
from edgekit.errors import BiasError, RuntimeBackendError

if TYPE_CHECKING:
    from edgekit.backends.llama_cpp.runtime import LlamaCppRuntime


def apply_control(llm: Any, matrix: FloatArray) -> None:
    """Add matrix[i] to block i's output from now on (row 0 is ignored, as in llama.cpp).

    The Llama object's cached prompt was computed without this vector, so it is reset: the next
    generation re-evaluates its prompt under the new constraint.
    """
    import llama_cpp

    rows = np.nonzero(np.abs(matrix[1:]).sum(axis=1))[0] + 1
    if rows.size == 0:
        clear_control(llm)
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


def clear_control(llm: Any) -> None:
    import llama_cpp

    llama_cpp.llama_set_adapter_cvec(llm.ctx, None, 0, 0, -1, -1)
    llm.reset()


def require_llama_cpp(runtime: object) -> LlamaCppRuntime:
    """The bias tools read logits and hidden states through llama.cpp; other runtimes cannot."""
    from edgekit.backends.llama_cpp.runtime import LlamaCppRuntime

    if not isinstance(runtime, LlamaCppRuntime):
        raise BiasError(
            "bias probes and control vectors need a GGUF model on llama.cpp",
            hint="Pass a .gguf file (ONNX exports cannot take control vectors).",
        )
    return runtime
