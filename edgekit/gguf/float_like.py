"""A float-like model from a quantized one, for judging quantizers where no float weights exist.

A quantized file expanded to F32 keeps every weight on its old type's grid, so that type
reproduces it exactly and a planner that measures errors parks tensors there for free. Real
float weights sit anywhere in a grid cell. Here each quantized tensor gets uniform noise as wide
as its source type's step, estimated per sub-block from the values' range:

    step = (max - min) / (2^bits - 1)      over the sub-block the type scales together

so the old grid is the nearest grid of the new weights, as a float model's own quantization
would be, but no type reproduces them: re-quantizing at the source type errs by about step / 12^0.5,
what quantizing real floats costs. Float tensors of the source (norms, biases) are copied.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO

import numpy as np
import numpy.typing as npt
from gguf import GGMLQuantizationType

from edgekit.errors import ConversionError
from edgekit.gguf.compose import Data, Source, float_rows, write_gguf
from edgekit.gguf.reader import GGUFHeader, TensorInfo, read_header

Q = GGMLQuantizationType
ROWS_PER_CHUNK = 4096
# (integer bits, values per scale) of the grids sources come in; others: 4 bits over 32.
GRIDS: Mapping[GGMLQuantizationType, tuple[int, int]] = {
    Q.Q8_0: (8, 32),
    Q.Q6_K: (6, 16),
    Q.Q5_K: (5, 32),
    Q.Q5_0: (5, 32),
    Q.Q5_1: (5, 32),
    Q.Q4_K: (4, 32),
    Q.Q4_0: (4, 32),
    Q.Q4_1: (4, 32),
    Q.IQ4_NL: (4, 32),
    Q.IQ4_XS: (4, 32),
    Q.Q3_K: (3, 16),
    Q.Q2_K: (2, 16),
}
FLOATS = frozenset({Q.F32, Q.F16, Q.BF16})


def grid_step(x: npt.NDArray[np.float32], source: GGMLQuantizationType) -> npt.NDArray[np.float32]:
    """The source type's step for every value of `x` (rows of whole sub-blocks)."""
    n_bits, group = GRIDS.get(source, (4, 32))
    blocks = x.reshape(-1, group)
    step = (blocks.max(axis=1) - blocks.min(axis=1)) / (2**n_bits - 1)
    return np.repeat(step, group).reshape(x.shape).astype(np.float32)


def dithered(
    x: npt.NDArray[np.float32], source: GGMLQuantizationType, rng: np.random.Generator
) -> npt.NDArray[np.float32]:
    noise = rng.uniform(-0.5, 0.5, size=x.shape).astype(np.float32)
    return (x + noise * grid_step(x, source)).astype(np.float32)


def make_float_like(source: Path, base: Path, out: Path, seed: int = 0) -> Path:
    """`base` (the F32 expansion of quantized `source`) with every quantized tensor of `source`
    moved off its grid; written to a temporary file and renamed."""
    was = {t.name: t.ggml_type for t in read_header(source).tensors}
    h = read_header(base)
    if any(t.ggml_type != Q.F32 for t in h.tensors):
        raise ConversionError(f"{base.name} is not an all-F32 expansion")
    scratch = out.with_name(out.name + ".noised")
    chosen: list[tuple[TensorInfo, GGMLQuantizationType, Data]] = []
    try:
        with scratch.open("wb") as f:
            for t in h.tensors:
                q = was.get(t.name, Q.F32)
                if q in FLOATS or len(t.shape) < 2:
                    data: Data = Source(h.path, h.data_offset + t.offset, t.n_bytes)
                else:
                    start = f.tell()
                    _write_dithered(f, h, t, q, seed)
                    data = Source(scratch, start, f.tell() - start)
                chosen.append((t, Q.F32, data))
        return write_gguf(h, out, chosen)
    finally:
        scratch.unlink(missing_ok=True)


def _write_dithered(
    f: BinaryIO, h: GGUFHeader, t: TensorInfo, q: GGMLQuantizationType, seed: int
) -> None:
    # Seeded by the tensor's name: the same source gives the same file whatever the order.
    rng = np.random.default_rng([seed, zlib.crc32(t.name.encode())])
    x = float_rows(h, t)
    for i in range(0, len(x), ROWS_PER_CHUNK):
        f.write(dithered(x[i : i + ROWS_PER_CHUNK], q, rng).tobytes())
