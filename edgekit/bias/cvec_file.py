"""llama.cpp's control-vector GGUF: write with gguf-py, read back with gguf-py or llama.cpp's own
GGUF parser (libggml-base), so a file edgekit writes is a file `llama-cli --control-vector` loads.

The format, as llama.cpp's cvector-generator writes it and common_control_vector_load_one reads
it: `general.architecture = "controlvector"`, `controlvector.model_hint` (the model's
architecture), `controlvector.layer_count`, and one 1-D F32 tensor `direction.N` of n_embd floats
per steered block N >= 1 (block 0 cannot be steered). llama.cpp multiplies the file by the
`--control-vector-scaled` factor and adds direction.N to block N's output. gguf-py has no
constants for this architecture, so its three keys are spelled here; everything else (the
general.* keys, tensor types) comes from gguf's enums.

edgekit stores the scheduled vector at strength 1.0 (direction x layer weight x layer norm), so
llama-cli applies exactly edgekit's schedule; the schedule and provenance ride along as extra
`edgekit.*` keys that llama.cpp ignores.
"""

from __future__ import annotations

import ctypes
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gguf
import numpy as np

from edgekit.bias.steering import FloatArray
from edgekit.errors import ControlVectorFileError

ARCH = "controlvector"
KEY_MODEL_HINT = f"{ARCH}.model_hint"
KEY_LAYER_COUNT = f"{ARCH}.layer_count"
KEY_META = "edgekit.bias.meta"  # JSON: schedule, model hash, calibration facts
TENSOR_PREFIX = "direction."


@dataclass(frozen=True)
class ControlVectorFile:
    matrix: FloatArray  # (n_layer, n_embd); row 0 is always zero
    model_hint: str
    meta: dict[str, Any]


def write_control_vector(
    path: Path, matrix: FloatArray, model_hint: str, meta: dict[str, Any] | None = None
) -> Path:
    """Write the non-zero block rows of `matrix` as direction.N tensors (N = block index)."""
    rows = [i for i in range(1, matrix.shape[0]) if np.any(matrix[i])]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    writer = gguf.GGUFWriter(str(tmp), ARCH)
    writer.add_string(KEY_MODEL_HINT, model_hint)
    writer.add_int32(KEY_LAYER_COUNT, len(rows))
    writer.add_string(KEY_META, json.dumps(meta or {}, sort_keys=True))
    for i in rows:
        writer.add_tensor(f"{TENSOR_PREFIX}{i}", np.ascontiguousarray(matrix[i], dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    tmp.replace(path)  # readers never see a half-written file
    return path


def _layer_of(name: str) -> int:
    prefix, _, index = name.partition(".")
    if prefix + "." != TENSOR_PREFIX or not index.isdigit() or int(index) == 0:
        raise ControlVectorFileError(f"{name!r} is not a direction.N tensor (N >= 1)")
    return int(index)


def read_control_vector(path: Path, n_layer: int | None = None) -> ControlVectorFile:
    """Read a control-vector GGUF with gguf-py, checking it the way llama.cpp's loader does."""
    if not path.is_file():
        raise ControlVectorFileError(f"control vector not found: {path}")
    reader = gguf.GGUFReader(str(path))

    def field(key: str) -> Any:
        f = reader.get_field(key)
        return None if f is None else f.contents()

    if field(gguf.Keys.General.ARCHITECTURE) != ARCH:
        raise ControlVectorFileError(f"{path} is not a control-vector GGUF")
    vectors: dict[int, FloatArray] = {}
    for t in reader.tensors:
        if t.tensor_type != gguf.GGMLQuantizationType.F32 or len(t.shape) != 1:
            raise ControlVectorFileError(f"{path}: {t.name} must be a 1-D F32 tensor")
        vectors[_layer_of(t.name)] = np.array(t.data, dtype=np.float32)
    return _assemble(path, vectors, field(KEY_MODEL_HINT) or "", field(KEY_META), n_layer)


def _assemble(
    path: Path,
    vectors: dict[int, FloatArray],
    hint: str,
    meta_json: str | None,
    n_layer: int | None,
) -> ControlVectorFile:
    if not vectors:
        raise ControlVectorFileError(f"{path} holds no direction tensors")
    sizes = {v.size for v in vectors.values()}
    if len(sizes) != 1:
        raise ControlVectorFileError(f"{path}: direction tensors differ in size")
    rows = n_layer if n_layer is not None else max(vectors) + 1
    matrix = np.zeros((rows, sizes.pop()), dtype=np.float32)
    for layer, v in vectors.items():
        if layer < rows:
            matrix[layer] += v
    return ControlVectorFile(matrix, hint, json.loads(meta_json) if meta_json else {})


class _GGUFInitParams(ctypes.Structure):
    _fields_ = [("no_alloc", ctypes.c_bool), ("ctx", ctypes.POINTER(ctypes.c_void_p))]


def read_with_llama_cpp(path: Path, n_layer: int | None = None) -> ControlVectorFile:
    """Read the file with llama.cpp's own GGUF parser (gguf_init_from_file in libggml-base).

    This mirrors common_control_vector_load_one, which llama-cpp-python does not expose: the
    same C parser, the same checks (direction.N with N >= 1, 1-D F32, equal sizes).
    """
    from edgekit.bias.hidden import _ggml_base

    lib = _ggml_base()
    lib.gguf_init_from_file.argtypes = [ctypes.c_char_p, _GGUFInitParams]
    lib.gguf_init_from_file.restype = ctypes.c_void_p
    lib.gguf_get_n_tensors.argtypes = [ctypes.c_void_p]
    lib.gguf_get_n_tensors.restype = ctypes.c_int64
    lib.gguf_get_tensor_name.argtypes = [ctypes.c_void_p, ctypes.c_int64]
    lib.gguf_get_tensor_name.restype = ctypes.c_char_p
    lib.gguf_get_tensor_type.argtypes = [ctypes.c_void_p, ctypes.c_int64]
    lib.gguf_get_tensor_type.restype = ctypes.c_int
    lib.gguf_find_key.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.gguf_find_key.restype = ctypes.c_int64
    lib.gguf_get_val_str.argtypes = [ctypes.c_void_p, ctypes.c_int64]
    lib.gguf_get_val_str.restype = ctypes.c_char_p
    lib.gguf_free.argtypes = [ctypes.c_void_p]
    lib.ggml_get_tensor.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.ggml_get_tensor.restype = ctypes.c_void_p
    lib.ggml_n_dims.argtypes = [ctypes.c_void_p]
    lib.ggml_n_dims.restype = ctypes.c_int
    lib.ggml_get_data.argtypes = [ctypes.c_void_p]
    lib.ggml_get_data.restype = ctypes.c_void_p
    lib.ggml_free.argtypes = [ctypes.c_void_p]

    ggml_ctx = ctypes.c_void_p()
    gctx = lib.gguf_init_from_file(
        str(path).encode(), _GGUFInitParams(False, ctypes.pointer(ggml_ctx))
    )
    if not gctx:
        raise ControlVectorFileError(f"llama.cpp's GGUF parser rejected {path}")
    try:

        def text(key: str) -> str | None:
            k = lib.gguf_find_key(gctx, key.encode())
            return None if k < 0 else (lib.gguf_get_val_str(gctx, k) or b"").decode()

        if text(gguf.Keys.General.ARCHITECTURE) != ARCH:
            raise ControlVectorFileError(f"{path} is not a control-vector GGUF")
        vectors: dict[int, FloatArray] = {}
        for i in range(lib.gguf_get_n_tensors(gctx)):
            name = lib.gguf_get_tensor_name(gctx, i)
            t = lib.ggml_get_tensor(ggml_ctx, name)
            n = int(lib.ggml_nelements(t))
            is_f32 = lib.gguf_get_tensor_type(gctx, i) == gguf.GGMLQuantizationType.F32
            if lib.ggml_n_dims(t) != 1 or not is_f32:
                raise ControlVectorFileError(f"{path}: {name.decode()} is not 1-D F32")
            data = (ctypes.c_float * n).from_address(lib.ggml_get_data(t))
            vectors[_layer_of(name.decode())] = np.array(data, dtype=np.float32)
        return _assemble(path, vectors, text(KEY_MODEL_HINT) or "", text(KEY_META), n_layer)
    finally:
        lib.gguf_free(gctx)
        lib.ggml_free(ggml_ctx)
