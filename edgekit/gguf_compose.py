"""Assemble a GGUF from tensors already quantized in other files: the sensitivity probe's trick.

llama.cpp quantizes each tensor on its own (its importance-matrix slice, its rows), so the bytes of
tensor T at type X are the same whichever mix T sits in. Quantizing the model once per type ("pure"
files) therefore gives every (tensor, type) pair, and any mix of them is a byte copy: a probe that
moves one tensor costs a file write, not a quantizer run. The final output is still written by
llama-quantize itself (a test checks both give identical tensor bytes).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from gguf import GGUF_DEFAULT_ALIGNMENT, GGMLQuantizationType, Keys

from edgekit.errors import ConversionError
from edgekit.gguf_file import GGUFHeader, _Cursor, read_header

_CHUNK = 16 * 2**20


@dataclass(frozen=True)
class Source:
    """Where the bytes of one (tensor, type) live."""

    path: Path
    offset: int  # absolute, in `path`
    n_bytes: int


class TensorPool:
    """Every (tensor, type) pair found in a set of GGUF files of the same model."""

    def __init__(self, files: list[Path]) -> None:
        if not files:
            raise ConversionError("no files to compose from")
        self.headers = [read_header(f) for f in files]
        self.template = self.headers[0]
        self.sources: dict[str, dict[GGMLQuantizationType, Source]] = {}
        for h in self.headers:
            for t in h.tensors:
                src = Source(h.path, h.data_offset + t.offset, t.n_bytes)
                self.sources.setdefault(t.name, {}).setdefault(t.ggml_type, src)

    def types_of(self, tensor: str) -> list[GGMLQuantizationType]:
        return sorted(self.sources.get(tensor, {}), key=lambda q: self.sources[tensor][q].n_bytes)

    def n_bytes(self, tensor: str, t: GGMLQuantizationType) -> int:
        return self.sources[tensor][t].n_bytes

    def compose(self, out: Path, types: Mapping[str, GGMLQuantizationType]) -> Path:
        """Write a GGUF with the template's metadata and each tensor at `types[name]` (or the
        template's own type)."""
        h = self.template
        chosen = []
        for t in h.tensors:
            want = types.get(t.name, t.ggml_type)
            src = self.sources[t.name].get(want)
            if src is None:
                raise ConversionError(f"no file holds {t.name} as {want.name}")
            chosen.append((t, want, src))
        alignment = int(h.metadata.get(Keys.General.ALIGNMENT, GGUF_DEFAULT_ALIGNMENT))
        head = _header_prefix(h)
        infos, offset = [], 0
        for t, want, src in chosen:
            name = t.name.encode()
            infos.append(
                struct.pack("<Q", len(name))
                + name
                + struct.pack("<I", len(t.shape))
                + b"".join(struct.pack("<Q", d) for d in t.shape)
                + struct.pack("<IQ", int(want), offset)
            )
            offset += -(-src.n_bytes // alignment) * alignment
        header = head + b"".join(infos)
        header += b"\0" * (-len(header) % alignment)
        tmp = out.with_name(f".{out.name}.{os.getpid()}.partial")
        try:
            with tmp.open("wb") as f:
                f.write(header)
                for _, _, src in chosen:
                    _copy(src, f)
                    f.write(b"\0" * (-src.n_bytes % alignment))
            os.replace(tmp, out)
        finally:
            tmp.unlink(missing_ok=True)
        return out


def _header_prefix(h: GGUFHeader) -> bytes:
    """The template's magic, counts and KV section, byte for byte."""
    with h.path.open("rb") as f:
        raw = f.read(h.data_offset)
    cur = _Cursor(raw, h.path)
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
