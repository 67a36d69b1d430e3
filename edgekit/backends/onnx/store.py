"""The fp32 fused graph's weights quantized once at 4 and 8 bits, on disk beside it.

Every plan (a convert, each probe of the sensitivity measurement) is a small graph whose
MatMulNBits initializers point into these files as ONNX external data, so no plan copies weights
in memory: a probe is a few MB of graph written next to the data, a shipped folder is the same
graph with the bytes it names streamed into its own model.onnx.data. The fp32 weights are read
through memory maps, one node at a time, so building the store holds one node's search at most.

Files, in the fp32 graph's folder (onnxruntime reads external data only from the model's own
folder): `k_quant-block32-4bit.data` and `...-8bit.data`, and `k_quant-block32.json`, the index
(weight name -> bits -> tensor -> offset, length, dims). All written under partial names and
renamed at the end, so a killed build leaves nothing that looks finished.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from edgekit.backends.onnx.blockquant import FIELDS, Packed, quantize_weight
from edgekit.errors import ConversionError

INLINE = 1024  # smaller tensors are kept in the graph, as onnx.save_model's default
# Tensors over ALIGN_ABOVE bytes start on a page, so onnxruntime may map them instead of reading
# them; smaller ones are packed (onnxruntime's own saver draws the line at 1 MiB too: padding every
# scale and zero-point table made a SmolLM2 file 0.5 MiB larger than the builder's).
ALIGN, ALIGN_ABOVE = 4096, 1 << 20
BITS = (4, 8)
Progress = Callable[[int, int], None]
_UINT8, _FLOAT = 2, 1  # onnx.TensorProto data types


@dataclass(frozen=True)
class Blob:
    """One tensor inside an external data file."""

    location: str  # file name, relative to the graph's folder
    offset: int
    length: int
    dims: tuple[int, ...]
    data_type: int

    def tensor(self, name: str) -> Any:
        """A TensorProto that points at this blob (nothing read)."""
        from onnx import TensorProto

        t = TensorProto(name=name, data_type=self.data_type, dims=self.dims)
        point(t, self.location, self.offset, self.length)
        return t


def point(tensor: Any, location: str, offset: int, length: int) -> None:
    """Make `tensor` external: its bytes at `offset` in the file `location`."""
    from onnx import TensorProto

    tensor.data_location = TensorProto.EXTERNAL
    del tensor.external_data[:]
    for key, value in (("location", location), ("offset", offset), ("length", length)):
        tensor.external_data.add(key=key, value=str(value))


def blob_of(init: Any) -> Blob | None:
    """Where an external initializer's bytes are; None for one stored in the graph."""
    if not init.external_data:
        return None
    info = {e.key: e.value for e in init.external_data}
    length = int(info["length"]) if "length" in info else -1
    return Blob(info["location"], int(info.get("offset", 0)), length, tuple(init.dims),
                init.data_type)  # fmt: skip


def read_array(init: Any, folder: Path) -> np.ndarray:
    """An initializer's values, memory-mapped when they live in external data."""
    from onnx import helper, numpy_helper

    blob = blob_of(init)
    if blob is None:
        return np.asarray(numpy_helper.to_array(init))
    dtype = helper.tensor_dtype_to_np_dtype(init.data_type)
    return np.memmap(folder / blob.location, dtype=dtype, mode="r", offset=blob.offset,
                     shape=blob.dims)  # fmt: skip


@dataclass(frozen=True)
class Table:
    """A weight to quantize, as (K, N): its size, and how to read it when its turn comes."""

    size: int
    load: Callable[[], np.ndarray]


class QuantStore:
    """The 4- and 8-bit k_quant twins of a graph's weights (keyed by weight initializer name)."""

    def __init__(self, folder: Path, block: int) -> None:
        self.folder, self.block = folder, block
        self.index_file = folder / f"k_quant-block{block}.json"
        self._index: dict[str, dict[str, dict[str, Blob]]] | None = None

    def data_name(self, bits: int) -> str:
        return f"k_quant-block{self.block}-{bits}bit.data"

    def blobs(self, weight: str, bits: int) -> dict[str, Blob]:
        """qweight, scales, zero_points of `weight` at `bits`."""
        index = self._load()
        if weight not in index:
            raise ConversionError(f"no quantized copy of {weight} in {self.index_file}")
        return index[weight][str(bits)]

    def ready(self, weights: Iterable[str]) -> bool:
        if not self.index_file.is_file():
            return False
        return all(w in self._load() for w in weights)

    def build(self, tables: Mapping[str, Table], progress: Progress | None = None) -> None:
        """Quantize each (K, N) table at 4 and 8 bits into the data files, one at a time (a
        table is loaded when its turn comes and dropped after, so a memory-mapped source adds
        one table's pages to the resident set, not the model's)."""
        tmp = {b: self.folder / f".{self.data_name(b)}.{os.getpid()}.partial" for b in BITS}
        index: dict[str, dict[str, dict[str, Blob]]] = {}
        total = sum(t.size for t in tables.values())
        done = 0
        try:
            files = {b: tmp[b].open("wb") for b in BITS}
            with files[4], files[8]:
                for name, table in tables.items():
                    weight = table.load()
                    index[name] = {
                        str(b): self._append(files[b], b, quantize_weight(weight, b, self.block))
                        for b in BITS
                    }
                    del weight
                    done += table.size
                    if progress is not None:
                        progress(done, total)
            for b in BITS:
                tmp[b].replace(self.folder / self.data_name(b))
            self._write_index(index)
        finally:
            for path in tmp.values():
                path.unlink(missing_ok=True)
        self._index = None

    def _append(self, f: IO[bytes], bits: int, packed: Packed) -> dict[str, Blob]:
        out = {}
        for field in FIELDS:
            array = np.ascontiguousarray(getattr(packed, field))
            align(f, array.nbytes)
            dtype = _FLOAT if array.dtype == np.float32 else _UINT8
            out[field] = Blob(self.data_name(bits), f.tell(), array.nbytes, array.shape, dtype)
            f.write(array.tobytes())
        return out

    def _write_index(self, index: Mapping[str, Mapping[str, Mapping[str, Blob]]]) -> None:
        doc = {
            w: {b: {f: [x.offset, x.length, list(x.dims), x.data_type] for f, x in by.items()}
                for b, by in per.items()}
            for w, per in index.items()
        }  # fmt: skip
        tmp = self.index_file.with_name(f".{self.index_file.name}.{os.getpid()}.partial")
        tmp.write_text(json.dumps(doc) + "\n", encoding="utf-8")
        tmp.replace(self.index_file)

    def _load(self) -> dict[str, dict[str, dict[str, Blob]]]:
        if self._index is None:
            doc = json.loads(self.index_file.read_text(encoding="utf-8"))
            self._index = {
                w: {b: {f: Blob(self.data_name(int(b)), o, n, tuple(d), t)
                        for f, (o, n, d, t) in by.items()}
                    for b, by in per.items()}
                for w, per in doc.items()
            }  # fmt: skip
        return self._index


def align(f: IO[bytes], nbytes: int) -> None:
    """Pad `f` to the next page if a tensor of `nbytes` is to be written there."""
    if nbytes > ALIGN_ABOVE:
        f.write(b"\0" * (-f.tell() % ALIGN))


def materialize(
    model: Any, src: Path, dst: Path, data_name: str, progress: Progress | None = None
) -> None:
    """Save `model` (its external tensors in `src`) as `dst` + its own data file beside it,
    copying the bytes a slice at a time; tensors under INLINE bytes go into the graph itself."""
    import onnx

    blobs = [(init, blob) for init in model.graph.initializer if (blob := blob_of(init))]
    total = sum(_length(src, b) for _, b in blobs)
    done = 0
    with (dst.parent / data_name).open("wb") as out:
        for init, blob in blobs:
            length = _length(src, blob)
            del init.external_data[:]
            if length < INLINE:
                init.data_location = onnx.TensorProto.DEFAULT
                init.raw_data = b"".join(_slices(src / blob.location, blob.offset, length))
                continue
            align(out, length)
            point(init, data_name, out.tell(), length)
            for piece in _slices(src / blob.location, blob.offset, length):
                out.write(piece)
            done += length
            if progress is not None:
                progress(done, total)
    onnx.save_model(model, str(dst))


def _length(folder: Path, blob: Blob) -> int:
    """A blob without a length runs to the end of its file (ONNX's rule)."""
    if blob.length >= 0:
        return blob.length
    return (folder / blob.location).stat().st_size - blob.offset


def _slices(path: Path, offset: int, length: int, size: int = 1 << 24) -> Iterator[bytes]:
    with path.open("rb") as f:
        f.seek(offset)
        while length > 0:
            piece = f.read(min(size, length))
            if not piece:
                raise ConversionError(f"{path.name} ends before the tensor it should hold")
            length -= len(piece)
            yield piece
