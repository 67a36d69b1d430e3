"""llama.cpp's own quantizer kernels (ggml_quantize_chunk, to_float), called in process on rows.

llama-quantize quantizes every row on its own with these same functions and the tensor's slice
of the importance matrix, so a row quantized here has the bytes llama-quantize would write for it
(a test checks). That makes a per-type error measurable on a sample of rows in milliseconds, and a
probe's tensors quantizable without writing a whole model per type.
"""

from __future__ import annotations

import ctypes
import functools
import itertools
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

from edgekit.errors import ConversionError

F32 = npt.NDArray[np.float32]
U8 = npt.NDArray[np.uint8]
_TO_FLOAT = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)


class _Traits(ctypes.Structure):
    # ggml.h: struct ggml_type_traits (only the fields up to to_float are read)
    _fields_ = [
        ("type_name", ctypes.c_char_p),
        ("blck_size", ctypes.c_int64),
        ("blck_size_interleave", ctypes.c_int64),
        ("type_size", ctypes.c_size_t),
        ("is_quantized", ctypes.c_bool),
        ("to_float", ctypes.c_void_p),
    ]


@functools.cache
def ggml_lib() -> Any:
    from edgekit.backends.llama_cpp.lib import ggml_base, import_llama_cpp

    import_llama_cpp()  # a missing or broken build is reported as the runtime reports it
    ggml = ggml_base()
    ggml.ggml_quantize_chunk.restype = ctypes.c_size_t
    ggml.ggml_quantize_chunk.argtypes = [
        ctypes.c_int,
        ctypes.c_void_p,
        ctypes.c_void_p,
        ctypes.c_int64,
        ctypes.c_int64,
        ctypes.c_int64,
        ctypes.c_void_p,
    ]
    ggml.ggml_get_type_traits.restype = ctypes.POINTER(_Traits)
    ggml.ggml_get_type_traits.argtypes = [ctypes.c_int]
    ggml.ggml_quantize_requires_imatrix.restype = ctypes.c_bool
    ggml.ggml_quantize_requires_imatrix.argtypes = [ctypes.c_int]
    return ggml


def row_bytes(q: GGMLQuantizationType, n_per_row: int) -> int:
    block, size = GGML_QUANT_SIZES[q]
    return n_per_row // block * size


def _ptr(a: npt.NDArray[Any] | None) -> int | None:
    return None if a is None else int(a.ctypes.data)


def quantize(
    rows: F32, q: GGMLQuantizationType, imatrix: F32 | None = None, threads: int = 1
) -> U8:
    """Quantize a (n_rows, n_per_row) float32 array to `q`, as llama-quantize would."""
    ggml = ggml_lib()
    x = np.ascontiguousarray(rows, dtype=np.float32)
    n_rows, n_per_row = x.shape
    if n_per_row % GGML_QUANT_SIZES[q][0]:
        raise ConversionError(f"{q.name} needs rows divisible by {GGML_QUANT_SIZES[q][0]}")
    w = None if imatrix is None else np.ascontiguousarray(imatrix, dtype=np.float32)
    if w is None and ggml.ggml_quantize_requires_imatrix(int(q)):
        raise ConversionError(f"{q.name} needs an importance matrix")
    rb = row_bytes(q, n_per_row)
    out = np.empty(n_rows * rb, dtype=np.uint8)

    def part(a: int, b: int) -> None:
        src, dst = _ptr(x[a:b]), int(out.ctypes.data) + a * rb
        ggml.ggml_quantize_chunk(int(q), src, dst, 0, b - a, n_per_row, _ptr(w))

    _in_parts(part, n_rows, threads)
    return out


def _in_parts(fn: Callable[[int, int], None], n_rows: int, threads: int) -> None:
    """fn(a, b) over `threads` contiguous row ranges at once: ctypes drops the GIL during a
    foreign call, so the parts run in parallel."""
    n_parts = max(1, min(threads, n_rows))
    cuts = [n_rows * i // n_parts for i in range(n_parts + 1)]
    if n_parts == 1:
        fn(0, n_rows)
        return
    errors: list[BaseException] = []

    def run(a: int, b: int) -> None:
        try:
            if b > a:
                fn(a, b)
        except BaseException as e:  # re-raised in the caller's thread
            errors.append(e)

    workers = [threading.Thread(target=run, args=(a, b)) for a, b in itertools.pairwise(cuts)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    if errors:
        raise errors[0]


def dequantize(data: U8, q: GGMLQuantizationType, n_per_row: int, threads: int = 2) -> F32:
    """Back to float32 rows through ggml's own to_float (in `threads` parts of whole rows)."""
    rb = row_bytes(q, n_per_row)
    n_rows = len(data) // rb
    out = np.empty(n_rows * n_per_row, dtype=np.float32)
    if q == GGMLQuantizationType.F32:
        out[:] = data.view(np.float32)
        return out.reshape(-1, n_per_row)
    fn = _TO_FLOAT(ggml_lib().ggml_get_type_traits(int(q)).contents.to_float)
    src = np.ascontiguousarray(data)

    def part(a: int, b: int) -> None:
        fn(
            int(src.ctypes.data) + a * rb,
            int(out.ctypes.data) + a * n_per_row * 4,
            (b - a) * n_per_row,
        )

    _in_parts(part, n_rows, threads)
    return out.reshape(-1, n_per_row)
