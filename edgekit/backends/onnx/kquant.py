"""onnxruntime's k_quant for one weight, a few thousand rows at a time, packed as MatMulNBits
stores it.

The search itself is onnxruntime's (`quant_tensor_k_quant_cpu`, llama.cpp's make_qkx), so what
is written here is byte for byte what `MatMulNBitsQuantizer` writes for the node (tested). Only
the bookkeeping differs: the quantizer passes the whole transposed weight at once, and the
search's temporaries are a dozen float32/float64 copies of it (~5 GB for Qwen2-0.5B's
151,936 x 896 head). Blocks are independent, so rows are quantized in chunks and packed as they
come.

Degenerate blocks: when every weight of a block lands on one level (a block of zeros, or a
constant block), the search's normal equations have a zero determinant; its candidate scales are
0/0 and it rejects them (NumPy warns "invalid value encountered in divide"). A zero block is
written with scale 0 instead of the search's placeholder 1, so it reads as zero under any zero
point, and every scale is checked to be finite before it ships.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from edgekit.errors import ConversionError

# Weights per call of the search: its ~12 temporaries then stay near 200 MB.
CHUNK_WEIGHTS = 1 << 22


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


def _pack_weights(q: np.ndarray, bits: int, rows: int, k_blocks: int) -> np.ndarray:
    q = q.astype(np.uint8)
    if bits == 4:
        q = q[:, ::2] | q[:, 1::2] << 4
    return q.reshape(rows, k_blocks, -1)


def _pack_zero_points(zp: np.ndarray, bits: int, rows: int) -> np.ndarray:
    """MatMulNBits' layout: one row per output column, two 4-bit points per byte, low first.
    (onnxruntime's packer pairs across rows, the same bytes when a row has an even number of
    blocks; with an odd number it fails, and this pads each row with its default point 8.)"""
    per_row = zp.astype(np.uint8).reshape(rows, -1)
    if bits == 8:
        return per_row
    if per_row.shape[1] % 2:
        per_row = np.pad(per_row, ((0, 0), (0, 1)), constant_values=8)
    return per_row[:, 0::2] | per_row[:, 1::2] << 4


def quantize_weight(weight: np.ndarray, bits: int, block: int) -> Packed:
    """k_quant of a (K, N) MatMul weight (a memmap is read a chunk at a time)."""
    from onnxruntime.quantization.neural_compressor.weight_only import quant_tensor_k_quant_cpu

    k, n = weight.shape
    k_blocks = -(-k // block)
    out_q, out_s, out_z = [], [], []
    for rows in _chunks(n, k_blocks * block):
        part = np.zeros((rows.stop - rows.start, k_blocks * block), dtype=np.float32)
        part[:, :k] = weight[:, rows].T
        check_finite(part, "the source weights")
        with np.errstate(divide="ignore", invalid="ignore"):
            q, scale, zp = quant_tensor_k_quant_cpu(part, bits, block)
        scale = scale.astype(np.float32).reshape(-1)
        scale[~part.reshape(-1, block).any(axis=1)] = 0.0  # zero blocks: see the docstring
        n_rows = rows.stop - rows.start
        out_q.append(_pack_weights(q, bits, n_rows, k_blocks))
        out_s.append(scale.reshape(n_rows, k_blocks))
        out_z.append(_pack_zero_points(zp, bits, n_rows))
    packed = Packed(np.concatenate(out_q), np.concatenate(out_s), np.concatenate(out_z))
    check_finite(packed.scales, "the quantized scales")
    return packed


def check_finite(values: np.ndarray, what: str) -> None:
    """No NaN or infinity ships: a bad scale would poison every output that reads its block."""
    bad = ~np.isfinite(values)
    if bad.any():
        raise ConversionError(
            f"{int(bad.sum())} non-finite values in {what}",
            hint="The source weights hold NaN or infinity; check the input model.",
        )
