"""Assemble a GGUF from a template's metadata and tensor data from anywhere: the probes' writer.

llama.cpp quantizes each tensor on its own (its importance-matrix slice, its rows), so the bytes of
tensor T at type X are the same whichever mix T sits in: a probe's tensors quantized in process
(backends/llama_cpp/ggml_quant.py) and the rest copied give the file llama-quantize would write
for that mix (a test checks, byte for byte). The final output is still written by llama-quantize.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import numpy.typing as npt
from gguf import GGUF_DEFAULT_ALIGNMENT, GGMLQuantizationType, Keys

from edgekit.errors import ConversionError
from edgekit.gguf.cursor import Cursor
from edgekit.gguf.reader import GGUFHeader, TensorInfo
from edgekit.outputs import atomic_output

_CHUNK = 16 * 2**20
F32 = npt.NDArray[np.float32]
U8 = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class Source:
    """Where the bytes of one (tensor, type) live."""

    path: Path
    offset: int  # absolute, in `path`
    n_bytes: int


Data = Source | U8  # bytes in a file, or in memory


def write_gguf(
    template: GGUFHeader, out: Path, chosen: Sequence[tuple[TensorInfo, GGMLQuantizationType, Data]]
) -> Path:
    """A GGUF with the template's metadata and, in the template's order, each tensor's type and
    data (a Source in another file or an array of bytes); written to a temp file, then renamed."""
    alignment = int(template.metadata.get(Keys.General.ALIGNMENT, GGUF_DEFAULT_ALIGNMENT))
    head = _header_prefix(template)
    infos, offset = [], 0
    for t, want, data in chosen:
        name = t.name.encode()
        infos.append(
            struct.pack("<Q", len(name))
            + name
            + struct.pack("<I", len(t.shape))
            + b"".join(struct.pack("<Q", d) for d in t.shape)
            + struct.pack("<IQ", int(want), offset)
        )
        offset += -(-_size(data) // alignment) * alignment
    header = head + b"".join(infos)
    header += b"\0" * (-len(header) % alignment)
    with atomic_output(out) as tmp, tmp.open("wb") as f:
        f.write(header)
        for _, _, data in chosen:
            if isinstance(data, Source):
                _copy(data, f)
            else:
                f.write(data.data)
            f.write(b"\0" * (-_size(data) % alignment))
    return out


def _size(data: Data) -> int:
    return data.n_bytes if isinstance(data, Source) else int(data.nbytes)


def float_rows(h: GGUFHeader, t: TensorInfo, rows: npt.NDArray[np.int64] | None = None) -> F32:
    """Tensor `t` of a float GGUF (F32/F16/BF16) as (n_rows, row) float32; `rows`: only those."""
    n_row = t.shape[0]
    raw = np.memmap(h.path, mode="r", offset=h.data_offset + t.offset, shape=(t.n_bytes,))
    q = GGMLQuantizationType
    if t.ggml_type == q.F32:
        m = raw.view(np.float32).reshape(-1, n_row)
        return np.asarray(m if rows is None else m[rows], dtype=np.float32)
    if t.ggml_type == q.F16:
        m16 = raw.view(np.float16).reshape(-1, n_row)
        return np.asarray(m16 if rows is None else m16[rows]).astype(np.float32)
    if t.ggml_type == q.BF16:
        b = raw.view(np.uint16).reshape(-1, n_row)
        sel = np.asarray(b if rows is None else b[rows]).astype(np.uint32) << 16
        return sel.view(np.float32)
    raise ConversionError(
        f"{t.name} is {t.ggml_type.name}; measuring needs a float base (F32, F16 or BF16)"
    )


def _header_prefix(h: GGUFHeader) -> bytes:
    """The template's magic, counts and KV section, byte for byte."""
    with h.path.open("rb") as f:
        raw = f.read(h.data_offset)
    cur = Cursor(raw, h.path)
    cur.take("<I")
    cur.take("<I")
    cur.take("<Q")  # tensor count: unchanged
    for _ in range(cur.take("<Q")):
        cur.string()
        cur.value(cur.value_type())
    return raw[: cur.pos]


def _copy(src: Source, f: BinaryIO) -> None:
    with src.path.open("rb") as fin:
        fin.seek(src.offset)
        remaining = src.n_bytes
        while remaining:
            buf = fin.read(min(_CHUNK, remaining))
            if not buf:
                raise ConversionError(f"{src.path} ended early")
            f.write(buf)
            remaining -= len(buf)
