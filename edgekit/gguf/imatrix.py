"""llama.cpp's GGUF importance matrix: read it as llama-quantize does, write it as llama-imatrix
does (from activations edgekit recorded, backends/llama_cpp/imatrix_collect.py), and derive the
spike prior from it.

The file holds, for every matrix multiplied by activations, `<tensor>.in_sum2` (the sum over
calibration tokens of x_j^2 per input column) and `<tensor>.counts` (tokens seen). llama-quantize
weighs column j of a tensor by in_sum2_j / count (1 where no token was seen); so do we.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
from gguf import GGMLQuantizationType

from edgekit.errors import ConversionError
from edgekit.gguf.reader import read_header
from edgekit.outputs import atomic_output

F32 = npt.NDArray[np.float32]
SUM2, COUNTS = ".in_sum2", ".counts"


def read_raw(path: Path) -> dict[str, tuple[F32, F32]]:
    """{tensor: (in_sum2, counts)} as stored."""
    h = read_header(path)
    arrays: dict[str, F32] = {}
    with path.open("rb") as f:
        for t in h.tensors:
            if t.ggml_type != GGMLQuantizationType.F32:
                raise ConversionError(f"{path}: {t.name} is {t.ggml_type.name}, expected F32")
            f.seek(h.data_offset + t.offset)
            arrays[t.name] = np.frombuffer(f.read(t.n_bytes), dtype=np.float32).copy()
    out = {}
    for name, sums in arrays.items():
        if name.endswith(SUM2):
            base = name[: -len(SUM2)]
            counts = arrays.get(base + COUNTS)
            if counts is None:
                raise ConversionError(f"{path}: {base} has sums but no counts")
            out[base] = (sums, counts)
    return out


def weights(path: Path) -> dict[str, F32]:
    """Per-column weights of each tensor, normalised as llama-quantize normalises them."""
    out = {}
    for name, (sums, counts) in read_raw(path).items():
        per = sums.reshape(len(counts), -1)
        w = np.where(counts[:, None] > 0, per / np.maximum(counts[:, None], 1e-30), 1.0)
        out[name] = w.reshape(-1).astype(np.float32)
    return out


def channel_spikes(w: dict[str, F32]) -> dict[str, float]:
    """The spike prior from the imatrix: how far the loudest input column's RMS rises above the
    median column's. A cheap stand-in for the per-token spike score of a torch calibration, from
    the activations llama.cpp itself recorded."""
    out = {}
    for name, v in w.items():
        rms = np.sqrt(np.maximum(v, 0.0))
        med = float(np.median(rms))
        out[name] = float(rms.max() / med) if med > 0 else 0.0
    return out


def write(
    path: Path,
    sums: Mapping[str, npt.NDArray[np.float64]],
    counts: Mapping[str, int],
    chunks: int,
    chunk_size: int,
    datasets: Sequence[str],
) -> Path:
    """llama-imatrix's GGUF layout: general.type = imatrix, the datasets, the chunk count and
    size, and per tensor `.in_sum2` (F32, one value per input column) and `.counts` (F32, [1])."""
    import gguf

    with atomic_output(path) as tmp:
        w = gguf.GGUFWriter(tmp, arch="")
        w.kv_data[0].pop(gguf.Keys.General.ARCHITECTURE, None)  # llama-imatrix writes none
        w.add_type("imatrix")
        w.add_array(gguf.Keys.IMatrix.DATASETS, list(datasets))
        w.add_uint32(gguf.Keys.IMatrix.CHUNK_COUNT, chunks)
        w.add_uint32(gguf.Keys.IMatrix.CHUNK_SIZE, chunk_size)
        for name in sorted(sums):
            w.add_tensor(name + SUM2, np.asarray(sums[name], dtype=np.float32))
            w.add_tensor(name + COUNTS, np.asarray([counts[name]], dtype=np.float32))
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
    return path
