"""The quant-type tables: each name means one thing, and the ONNX stand-ins count what
onnxruntime really stores."""

from __future__ import annotations

from gguf import GGML_QUANT_SIZES

from edgekit.quant.types import (
    CEILING,
    DYNAMIC_INT8,
    LADDER,
    MIX_LABEL,
    NBITS,
    NBITS_4,
    NBITS_8,
    NBITS_TYPE_OF,
    ONNX_FLOAT,
    STANDS_FOR,
    STOCK_MIXES,
    bits,
)


def test_onnx_stand_ins_have_the_bytes_onnxruntime_writes() -> None:
    # MatMulNBits per block of 32 weights: the codes, one fp32 scale, a zero point (k_quant).
    codes_and_scale = {NBITS_4: 32 * 4 // 8 + 4, NBITS_8: 32 + 4}
    zero_point = {NBITS_4: 0.5, NBITS_8: 1}
    for t, stored in codes_and_scale.items():
        block, size = GGML_QUANT_SIZES[t]
        assert block == 32
        assert stored <= size <= stored + zero_point[t] + 3  # the 8-bit stand-in counts 3 B more
    # quantize_dynamic's MatMulInteger: one byte per weight.
    assert GGML_QUANT_SIZES[DYNAMIC_INT8] == (1, 1)
    assert bits(ONNX_FLOAT) == 32


def test_each_onnx_name_means_one_type() -> None:
    names = (NBITS_4, NBITS_8, ONNX_FLOAT, DYNAMIC_INT8)
    assert len(set(names)) == len(names)
    assert set(STANDS_FOR) == {NBITS_4, NBITS_8, ONNX_FLOAT}
    assert NBITS == {NBITS_4: 4, NBITS_8: 8}
    # The GGUF-minded names map onto the stand-ins, and the stand-ins onto themselves.
    assert set(NBITS_TYPE_OF.values()) <= set(STANDS_FOR)
    assert all(NBITS_TYPE_OF[t] == t for t in STANDS_FOR)


def test_the_ladder_climbs_to_its_ceiling_and_every_rung_has_a_label() -> None:
    assert [bits(q) for q in LADDER] == sorted(bits(q) for q in LADDER)
    assert LADDER[-1] == CEILING
    for q in LADDER:
        assert MIX_LABEL[q] in STOCK_MIXES or MIX_LABEL[q] == q.name
