"""Add key/value metadata to a finished GGUF file without touching its tensor data.

llama.cpp's quantizer takes kv_overrides only as a C++ std::vector (not reachable through ctypes)
and gguf-py would re-serialise every tensor, so this rewrites just the header: the new KV pairs go
after the existing ones, the tensor table is copied byte for byte (its offsets are relative to the
data section), and the data section is streamed across after re-padding to the alignment.
"""

from __future__ import annotations

import errno
import os
import shutil
import struct
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import BinaryIO

from gguf import GGUF_DEFAULT_ALIGNMENT, GGUFValueType, Keys

from edgekit.errors import NotAGGUFError

# The header walker is the same one the reader uses (it skips the vocabulary without keeping it).
from edgekit.gguf.cursor import Cursor
from edgekit.gguf.reader import read_header, read_tensor_info

MetaValue = str | bool | int | float | Sequence[str] | Sequence[float]

_COPY_CHUNK = 16 * 2**20


def _string(s: str) -> bytes:
    raw = s.encode("utf-8")
    return struct.pack("<Q", len(raw)) + raw


def _scalar(value: str | bool | int | float) -> tuple[GGUFValueType, bytes]:
    if isinstance(value, str):
        return GGUFValueType.STRING, _string(value)
    if isinstance(value, bool):
        return GGUFValueType.BOOL, struct.pack("<?", value)
    if isinstance(value, int):
        if 0 <= value < 2**32:
            return GGUFValueType.UINT32, struct.pack("<I", value)
        return GGUFValueType.INT64, struct.pack("<q", value)
    return GGUFValueType.FLOAT32, struct.pack("<f", value)


def encode_kv(key: str, value: MetaValue) -> bytes:
    """One GGUF key/value pair, serialised."""
    if isinstance(value, str | bool | int | float):
        vtype, body = _scalar(value)
        return _string(key) + struct.pack("<I", vtype) + body
    items = [_scalar(v) for v in value]
    item_type = items[0][0] if items else GGUFValueType.STRING
    if any(t != item_type for t, _ in items):
        raise ValueError(f"metadata array {key} mixes types")
    head = struct.pack("<IIQ", GGUFValueType.ARRAY, item_type, len(items))
    return _string(key) + head + b"".join(b for _, b in items)


def add_metadata(src: str | Path, dst: str | Path, kv: Mapping[str, MetaValue]) -> None:
    """Write `src` to `dst` with `kv` added (keys already in `src` are replaced)."""
    src, dst = Path(src), Path(dst)
    header = read_header(src)  # validates the whole file first
    alignment = int(header.metadata.get(Keys.General.ALIGNMENT, GGUF_DEFAULT_ALIGNMENT))
    with src.open("rb") as f:
        raw = f.read(header.data_offset)
    cur = Cursor(raw, src)
    cur.take("<I")  # magic, checked by read_header
    version, n_tensors, n_kv = cur.take("<I"), cur.take("<Q"), cur.take("<Q")
    kept: list[bytes] = []
    for _ in range(n_kv):
        start = cur.pos
        key = cur.string()
        cur.value(cur.value_type())
        if key not in kv:
            kept.append(raw[start : cur.pos])
    tensors_start = cur.pos
    for _ in range(n_tensors):
        read_tensor_info(cur)
    if cur.pos > header.data_offset:
        raise NotAGGUFError(f"{src}: tensor table runs into the data section")
    kept += [encode_kv(k, v) for k, v in kv.items()]
    head = struct.pack("<IIQQ", *struct.unpack_from("<I", raw, 0), version, n_tensors, len(kept))
    new_header = head + b"".join(kept) + raw[tensors_start : cur.pos]
    padding = -len(new_header) % alignment
    with src.open("rb") as fin, dst.open("wb") as fout:
        fout.write(new_header + b"\0" * padding)
        _copy_rest(fin, fout, header.data_offset, header.file_size)


def _copy_rest(fin: BinaryIO, fout: BinaryIO, start: int, end: int) -> None:
    """Copy fin[start:end] to fout's position; in-kernel where the OS allows (no user copy)."""
    fout.flush()
    offset = start
    try:
        while offset < end:
            n = os.copy_file_range(fin.fileno(), fout.fileno(), end - offset, offset)
            if n == 0:
                break
            offset += n
    except (AttributeError, OSError) as e:
        if isinstance(e, OSError) and e.errno == errno.ENOSPC:
            raise
    fin.seek(offset)
    fout.seek(0, os.SEEK_END)
    shutil.copyfileobj(fin, fout, _COPY_CHUNK)
