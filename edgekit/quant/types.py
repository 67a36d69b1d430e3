"""Every quant-type table edgekit uses, each spelled once (gguf-py's constants.py is the model).

Types are gguf-py's `GGMLQuantizationType`; sizes come from its `GGML_QUANT_SIZES`. What lives
here is edgekit's own knowledge about them:
  - FALLBACK: llama.cpp's type for rows a block size does not divide;
  - LADDER / CEILING: the types the measured mix moves tensors between;
  - FILE_TYPE_OF / MIX_LABEL / STOCK_MIXES: the file-type labels and llama.cpp's named mixes;
  - META_PREFIX: the GGUF metadata keys a plan is recorded under;
  - QUANTIZE_TIME / REPACKED_ON_CPU / CONVERTER_OUTTYPE: what llama.cpp does with each type
    (how long it takes to quantize, which its CPU back end repacks, convert_hf_to_gguf's names);
  - the ONNX stand-ins: the GGUF types the planner counts bytes with for what onnxruntime writes.
    NBITS_4 / NBITS_8 are MatMulNBits (fused graph); DYNAMIC_INT8 is quantize_dynamic's
    MatMulInteger (unfused graph). Each name means one thing only.
"""

from __future__ import annotations

from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, LlamaFileType

Q = GGMLQuantizationType
F = LlamaFileType

FLOAT_TYPES = frozenset({Q.F32, Q.F16, Q.BF16})

# Metadata keys of a planned file: edgekit.quant.method, .recipe, .kept_tensors, ...
META_PREFIX = "edgekit.quant."

# llama.cpp's fallbacks for rows its block size does not divide (tensor_type_fallback in
# llama-quant.cpp of the vendored 0.3.36 tree); F16 after that. Tested against the tool.
FALLBACK: dict[GGMLQuantizationType, GGMLQuantizationType] = {
    **dict.fromkeys((Q.TQ1_0, Q.TQ2_0, Q.Q2_K, Q.Q3_K), Q.Q4_0),
    **dict.fromkeys(
        (Q.IQ2_XXS, Q.IQ2_XS, Q.IQ2_S, Q.IQ3_XXS, Q.IQ3_S, Q.IQ1_S, Q.IQ1_M),
        Q.IQ4_NL,
    ),
    Q.IQ4_XS: Q.IQ4_NL,
    Q.Q4_K: Q.Q5_0,
    Q.Q5_K: Q.Q5_1,
    Q.Q6_K: Q.Q8_0,
}

# The ladder each tensor may climb in the measured mix (llama.cpp falls back for rows these do
# not divide); CEILING is the most bits a tensor is given: the zero of the measured costs.
LADDER = (Q.Q2_K, Q.Q3_K, Q.IQ4_XS, Q.Q4_K, Q.Q5_K, Q.Q6_K, Q.Q8_0)
CEILING = Q.Q8_0

# The file type each base type is labelled with (general.file_type); the mix itself is ours.
FILE_TYPE_OF: dict[GGMLQuantizationType, LlamaFileType] = {
    Q.F32: F.ALL_F32,
    Q.F16: F.MOSTLY_F16,
    Q.BF16: F.MOSTLY_BF16,
    Q.Q8_0: F.MOSTLY_Q8_0,
    Q.Q6_K: F.MOSTLY_Q6_K,
    Q.Q5_K: F.MOSTLY_Q5_K_M,
    Q.Q5_0: F.MOSTLY_Q5_0,
    Q.Q5_1: F.MOSTLY_Q5_1,
    Q.Q4_K: F.MOSTLY_Q4_K_M,
    Q.Q4_0: F.MOSTLY_Q4_0,
    Q.Q4_1: F.MOSTLY_Q4_1,
    Q.Q3_K: F.MOSTLY_Q3_K_M,
    Q.Q2_K: F.MOSTLY_Q2_K,
    Q.IQ4_NL: F.MOSTLY_IQ4_NL,
}

# Relative time llama.cpp's kernels take to quantize with an imatrix (measured here on 1.3M
# values: Q5_0/Q6_K ~65 ms, Q3_K 80, Q4_0 200, Q4_K/Q5_K/Q5_1/Q2_K ~250, IQ4_XS/IQ4_NL ~350).
QUANTIZE_TIME = {Q.Q8_0: 0, Q.Q5_0: 1, Q.Q6_K: 1, Q.Q3_K: 1.2, Q.Q4_0: 3, Q.IQ4_XS: 5, Q.IQ4_NL: 5}

# Types llama.cpp's CPU back end repacks (ggml-cpu "extra" buffer types) on x86 and ARM.
REPACKED_ON_CPU = frozenset({Q.Q4_0, Q.Q4_K, Q.IQ4_NL})

# convert_hf_to_gguf.py's --outtype for the float (and Q8_0) files it writes.
CONVERTER_OUTTYPE = {Q.F32: "f32", Q.F16: "f16", Q.BF16: "bf16", Q.Q8_0: "q8_0"}

# llama.cpp's named mixes a measured convert can match in size (--mix).
STOCK_MIXES = ("Q2_K", "Q3_K_S", "Q3_K_M", "Q3_K_L", "IQ4_XS", "Q4_K_S", "Q4_K_M", "Q5_K_M", "Q6_K")
DEFAULT_MIX = "Q4_K_M"

# The file-type label of a measured mix: the stock name of the type holding the most bytes.
MIX_LABEL: dict[GGMLQuantizationType, str] = {
    Q.Q2_K: "Q2_K",
    Q.Q3_K: "Q3_K_M",
    Q.IQ4_XS: "IQ4_XS",
    Q.Q4_K: "Q4_K_M",
    Q.Q5_K: "Q5_K_M",
    Q.Q6_K: "Q6_K",
    Q.Q8_0: "Q8_0",
    Q.Q4_0: "Q4_0",
    Q.IQ4_NL: "IQ4_NL",
    Q.Q5_0: "Q5_0",
    Q.Q5_1: "Q5_1",
}

# ONNX stand-ins: GGUF types whose bytes per block of 32 are close to what onnxruntime stores.
#   Q4_1 -> MatMulNBits bits=4: 16 B codes + fp32 scale = 20 B, as Q4_1 (k_quant's 4-bit zero
#           adds 0.5 B)
#   Q8_1 -> MatMulNBits bits=8: 32 B codes + fp32 scale + 8-bit zero = 37 B; gguf-py counts
#           Q8_1 as 40 B, so budgets overcount 8-bit nodes by 3 B per 32 weights (8%)
#   F32  -> left as a float MatMul
#   I8   -> quantize_dynamic's MatMulInteger (one byte per weight, unfused graph only)
NBITS_4, NBITS_8, ONNX_FLOAT, DYNAMIC_INT8 = Q.Q4_1, Q.Q8_1, Q.F32, Q.I8
STANDS_FOR = {
    NBITS_4: "MatMulNBits bits=4",
    NBITS_8: "MatMulNBits bits=8",
    ONNX_FLOAT: "float MatMul",
}
NBITS = {NBITS_4: 4, NBITS_8: 8}
# What a GGUF-minded --high-type means on MatMulNBits.
NBITS_TYPE_OF = {
    **dict.fromkeys((Q.Q8_0, Q.Q8_1, Q.Q6_K, Q.Q5_K, Q.Q5_0, Q.Q5_1), NBITS_8),
    **dict.fromkeys((Q.Q4_0, Q.Q4_1, Q.Q4_K), NBITS_4),
    **dict.fromkeys((Q.F16, Q.BF16, Q.F32), ONNX_FLOAT),
}


def bits(q: GGMLQuantizationType) -> float:
    """Bits per weight of a type, block scales included."""
    block, size = GGML_QUANT_SIZES[q]
    return 8 * size / block
