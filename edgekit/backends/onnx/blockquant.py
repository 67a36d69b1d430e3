"""One weight to MatMulNBits blocks, a few thousand rows at a time: k_quant at 4 bits,
onnxruntime's C++ min/max quantizer at 8.

4 bits: onnxruntime's own k_quant search (`quant_tensor_k_quant_cpu`, llama.cpp's make_qkx),
so the bytes are what `MatMulNBitsQuantizer` with k_quant writes for the node (tested). The
quantizer passes the whole transposed weight at once and the search's temporaries are a dozen
float copies of it (~5 GB for Qwen2-0.5B's 151,936 x 896 head); blocks are independent, so rows
go through in chunks.

8 bits: the search is NumPy, 20 candidate scales per block, and costs as much again as the 4-bit
pass while at 256 levels it has nothing left to find: an asymmetric min/max scale is within
half a step of the data. onnxruntime's C++ kernel (`quantize_matmul_8bits`, what its default
8-bit config writes, tested) does it in a fraction of the time.

Degenerate blocks: when every weight of a block lands on one level (a block of zeros, or a
constant block), the k_quant search's normal equations have a zero determinant; its candidate
scales are 0/0 and it rejects them (NumPy warns "invalid value encountered in divide"). A zero
block is written with scale 0 instead of the search's placeholder 1, so it reads as zero under any
zero point, and every scale is checked to be finite before it ships.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from edgekit.errors import ConversionError

# Weights per call: the 4-bit search's ~12 temporaries then stay near 200 MB a thread.
CHUNK_WEIGHTS = 1 << 22
THREADS = min(4, os.cpu_count() or 1)


@dataclass(frozen=True)
class Packed:
    """One node's MatMulNBits tensors (rows are the weight's output columns, N)."""

    qweight: np.ndarray  # uint8 (N, k_blocks, block * bits / 8)
    scales: np.ndarray  # float32 (N, k_blocks)
    zero_points: np.ndarray  # uint8 (N, k_blocks) at 8 bits; two per byte at 4 bits


def _chunks(n_rows: int, row_len: int) -> Iterator[slice]:
    rows = max(1, CHUNK_WEIGHTS // max(row_len, 1))
    for start in range(0, n_rows, rows):
        yield slice(start, min(start + rows, n_rows))


def _pack_zero_points(zp: np.ndarray, rows: int) -> np.ndarray:
    """MatMulNBits' 4-bit layout: one row per output column, two points per byte, low first.
    (onnxruntime's packer pairs across rows: the same bytes when a row has an even number of
    blocks; with an odd number it fails, and this pads each row with its default point 8.)"""
    per_row = zp.astype(np.uint8).reshape(rows, -1)
    if per_row.shape[1] % 2:
        per_row = np.pad(per_row, ((0, 0), (0, 1)), constant_values=8)
    return per_row[:, 0::2] | per_row[:, 1::2] << 4


def _k_quant_4bit(part: np.ndarray, block: int, _k: int) -> Packed:
    """`part`: (rows, k_blocks * block) float32, a row per output column, zero-padded past K
    (onnxruntime's k_quant quantizes the padding too)."""
    from onnxruntime.quantization.neural_compressor.weight_only import quant_tensor_k_quant_cpu

    rows, k_blocks = part.shape[0], part.shape[1] // block
    with np.errstate(divide="ignore", invalid="ignore"):
        q, scale, zp = quant_tensor_k_quant_cpu(part, 4, block)
    scale = scale.astype(np.float32).reshape(-1)
    scale[~part.reshape(-1, block).any(axis=1)] = 0.0  # zero blocks: see the docstring
    q = q.astype(np.uint8)
    return Packed(
        (q[:, ::2] | q[:, 1::2] << 4).reshape(rows, k_blocks, -1),
        scale.reshape(rows, k_blocks),
        _pack_zero_points(zp, rows),
    )


def _minmax_8bit(part: np.ndarray, block: int, k: int) -> Packed:
    from onnxruntime.capi._pybind_state import quantize_matmul_8bits

    rows, k_blocks = part.shape[0], part.shape[1] // block
    packed = Packed(
        np.zeros((rows, k_blocks, block), dtype=np.uint8),
        np.zeros((rows, k_blocks), dtype=np.float32),
        np.zeros((rows, k_blocks), dtype=np.uint8),
    )
    weight = np.ascontiguousarray(part.T)  # the kernel reads (K, N)
    quantize_matmul_8bits(
        packed.qweight, weight, packed.scales, packed.zero_points, block, rows,
        k, False,  # the true K: the padding stays 0, as onnxruntime writes it; asymmetric
    )  # fmt: skip
    return packed


def quantize_weight(weight: np.ndarray, bits: int, block: int) -> Packed:
    """A (K, N) MatMul weight as MatMulNBits blocks (a memmap is read a chunk at a time).
    Chunks go through on every core: NumPy lets go of the GIL inside its array loops."""
    k, n = weight.shape
    k_blocks = -(-k // block)
    quantize = _k_quant_4bit if bits == 4 else _minmax_8bit

    def one(rows: slice) -> Packed:
        part = np.zeros((rows.stop - rows.start, k_blocks * block), dtype=np.float32)
        part[:, :k] = weight[:, rows].T
        check_finite(part, "the source weights")
        return quantize(part, block, k)

    with ThreadPoolExecutor(THREADS) as pool:
        parts = list(pool.map(one, _chunks(n, k_blocks * block)))
    packed = Packed(*(np.concatenate([getattr(p, f) for p in parts]) for f in FIELDS))
    check_finite(packed.scales, "the quantized scales")
    return packed


FIELDS = ("qweight", "scales", "zero_points")  # MatMulNBits' input order after the activations


def check_finite(values: np.ndarray, what: str) -> None:
    """No NaN or infinity ships: a bad scale would poison every output that reads its block."""
    bad = ~np.isfinite(values)
    if bad.any():
        raise ConversionError(
            f"{int(bad.sum())} non-finite values in {what}",
            hint="The source weights hold NaN or infinity; check the input model.",
        )
