"""Block quantization in row chunks (edgekit.backends.onnx.blockquant) and the on-disk store.

The reference is onnxruntime's own path for one node on the whole weight: at 4 bits its k_quant
search packed by make_matmul_weight_only_node (MatMulNBitsQuantizer with k_quant), at 8 bits its
default config's C++ kernel."""

from __future__ import annotations

import functools
import warnings
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from onnx import numpy_helper

from edgekit.backends.onnx import blockquant
from edgekit.backends.onnx.blockquant import quantize_weight
from edgekit.backends.onnx.store import QuantStore, Table, read_array
from edgekit.errors import ConversionError


def onnxruntime_packed(weight: np.ndarray, bits: int, block: int) -> dict[str, np.ndarray]:
    if bits == 8:
        return onnxruntime_8bit(weight, block)
    from onnxruntime.quantization.neural_compressor.weight_only import (
        make_matmul_weight_only_node,
        quant_tensor_k_quant_cpu,
    )

    k, n = weight.shape
    k_blocks = -(-k // block)
    padded = np.pad(weight, ((0, k_blocks * block - k), (0, 0)))
    q, scale, zp = quant_tensor_k_quant_cpu(padded.T, bits, block)
    node = type("N", (), {"input": ["x", "w"], "output": ["y"], "name": "mm"})
    _, inits = make_matmul_weight_only_node(
        node, (k, n), bits, block, k_blocks, q.astype("uint8"), scale.astype("float32"), zp
    )
    by_suffix = {i.name.split("w", 1)[1]: numpy_helper.to_array(i) for i in inits}
    return {
        "scales": by_suffix["_scale"],
        "zero_points": by_suffix["_zp"],
        "qweight": by_suffix[f"_Q{bits}G{block}"],
    }


def onnxruntime_8bit(weight: np.ndarray, block: int) -> dict[str, np.ndarray]:
    """What onnxruntime's default 8-bit config computes for the whole weight in one call."""
    from onnxruntime.quantization.matmul_nbits_quantizer import (
        DefaultWeightOnlyQuantConfig,
        DefaultWeightOnlyQuantizer,
    )

    config = DefaultWeightOnlyQuantConfig(block, is_symmetric=False, bits=8)
    packed, scales, zero_points = DefaultWeightOnlyQuantizer(config).qbits_block_quant(weight)
    return {"qweight": packed, "scales": scales, "zero_points": zero_points}


@pytest.mark.parametrize("bits", [4, 8])
@pytest.mark.parametrize("shape", [(64, 10), (128, 7), (40, 6)])  # odd N; K not a whole block
def test_chunked_search_writes_onnxruntimes_bytes(
    bits: int, shape: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    weight = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    monkeypatch.setattr(blockquant, "CHUNK_WEIGHTS", 64 * 2)  # two rows a call: many chunks
    got = quantize_weight(weight, bits, 32)
    want = onnxruntime_packed(weight, bits, 32)
    for field, array in want.items():
        assert np.array_equal(getattr(got, field), array), field


def test_an_odd_number_of_blocks_pads_each_rows_zero_points() -> None:
    """onnxruntime's own packer cannot do this shape; MatMulNBits wants (N, ceil(blocks / 2))."""
    from onnxruntime.quantization.neural_compressor.weight_only import quant_tensor_k_quant_cpu

    weight = np.random.default_rng(3).standard_normal((96, 5)).astype(np.float32)
    got = quantize_weight(weight, 4, 32)
    points = quant_tensor_k_quant_cpu(weight.T, 4, 32)[2].reshape(5, 3)
    assert got.zero_points.shape == (5, 2)
    assert np.array_equal(got.zero_points & 0x0F, points[:, 0::2])
    assert np.array_equal(got.zero_points[:, 0] >> 4, points[:, 1])
    assert (got.zero_points[:, 1] >> 4 == 8).all()


@pytest.mark.parametrize("bits", [4, 8])
def test_a_zero_block_gets_a_zero_scale_and_reads_as_zero(bits: int) -> None:
    weight = np.random.default_rng(1).standard_normal((64, 4)).astype(np.float32)
    weight[:32, 2] = 0.0  # column 2's first block
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the search's 0/0 stays inside it, not in the terminal
        got = quantize_weight(weight, bits, 32)
    assert got.scales[2, 0] == 0.0
    assert np.isfinite(got.scales).all() and (got.scales[[0, 1, 3]] > 0).all()


def test_non_finite_source_weights_are_refused() -> None:
    weight = np.ones((32, 2), dtype=np.float32)
    weight[3, 1] = np.nan
    with pytest.raises(ConversionError, match="non-finite values in the source"):
        quantize_weight(weight, 8, 32)


def test_store_keeps_both_widths_on_disk_and_reads_them_back(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    tables = {
        "a": rng.standard_normal((64, 12)).astype(np.float32),
        "b": rng.standard_normal((32, 9)).astype(np.float32),
    }
    seen: list[tuple[int, int]] = []
    store = QuantStore(tmp_path, 32)
    assert not store.ready(tables)
    sources = {n: Table(t.size, functools.partial(np.asarray, t)) for n, t in tables.items()}
    store.build(sources, lambda done, total: seen.append((done, total)))
    assert seen[-1] == (64 * 12 + 32 * 9,) * 2
    again = QuantStore(tmp_path, 32)
    assert again.ready(tables) and not again.ready(["c"])
    for name, table in tables.items():
        for bits in (4, 8):
            want = quantize_weight(table, bits, 32)
            for field, blob in again.blobs(name, bits).items():
                got = read_array(blob.tensor(field), tmp_path)
                assert np.array_equal(got, getattr(want, field)), (name, bits, field)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "k_quant-block32-4bit.data",
        "k_quant-block32-8bit.data",
        "k_quant-block32.json",
    ]
