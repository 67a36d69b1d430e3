"""What differs between the families edgekit converts: GGUF hyperparameters and weight fixes.

Mirrors the per-family classes of llama.cpp's convert_hf_to_gguf.py (LlamaModel, Qwen2Model,
Gemma3Model); which families these are, and their knobs, is the table in families.py. Tensor
names are never listed here: gguf-py's TensorNameMap maps them.
"""

from __future__ import annotations

import math
from typing import Any

import gguf
import numpy as np

from edgekit.converters.families import Family
from edgekit.converters.hf_weights import F32Array, Weight
from edgekit.errors import ConversionError, UnsupportedArchitectureError

A = gguf.MODEL_ARCH
T = gguf.MODEL_TENSOR
HParams = dict[str, Any]


def head_dim(hp: HParams) -> int:
    return int(hp.get("head_dim") or hp["hidden_size"] // hp["num_attention_heads"])


def n_kv_heads(hp: HParams) -> int:
    return int(hp.get("num_key_value_heads") or hp["num_attention_heads"])


def add_hparams(w: gguf.GGUFWriter, family: Family, hp: HParams, n_vocab: int) -> None:
    w.add_block_count(hp["num_hidden_layers"])
    w.add_context_length(hp.get("max_position_embeddings") or 4096)
    w.add_embedding_length(hp["hidden_size"])
    w.add_feed_forward_length(hp["intermediate_size"])
    w.add_head_count(hp["num_attention_heads"])
    w.add_head_count_kv(n_kv_heads(hp))
    w.add_layer_norm_rms_eps(hp.get("rms_norm_eps") or 1e-6)
    w.add_key_length(head_dim(hp))
    w.add_value_length(head_dim(hp))
    w.add_rope_dimension_count(head_dim(hp))
    w.add_rope_freq_base(float(hp.get("rope_theta") or 10000.0))
    w.add_vocab_size(n_vocab)
    _add_rope_scaling(w, hp)
    if family.arch == A.GEMMA3:
        _add_gemma3(w, hp)


def _add_rope_scaling(w: gguf.GGUFWriter, hp: HParams) -> None:
    rs = hp.get("rope_scaling") or {}
    kind = rs.get("rope_type") or rs.get("type")
    if kind in (None, "default"):
        return
    if kind == "linear":
        w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        w.add_rope_scaling_factor(float(rs["factor"]))
    elif kind == "yarn":
        w.add_rope_scaling_type(gguf.RopeScalingType.YARN)
        w.add_rope_scaling_factor(float(rs["factor"]))
        orig = rs.get("original_max_position_embeddings") or hp["max_position_embeddings"]
        w.add_rope_scaling_orig_ctx_len(int(orig))
    elif kind != "llama3":  # llama3 scaling travels as the rope_freqs tensor (extra_tensors)
        raise UnsupportedArchitectureError(
            f"rope scaling {kind!r} is not supported", hint="Supported: linear, yarn, llama3."
        )


def _add_gemma3(w: gguf.GGUFWriter, hp: HParams) -> None:
    scalar = hp.get("query_pre_attn_scalar")
    # llama.cpp derives Gemma 3's attention scale from the head size (the 62-block 27B: from
    # n_embd / n_head); any other query_pre_attn_scalar would run with the wrong scale.
    allowed = {head_dim(hp)}
    if hp["num_hidden_layers"] == 62:
        allowed.add(hp["hidden_size"] // hp["num_attention_heads"])
    if scalar is not None and int(scalar) not in allowed:
        raise UnsupportedArchitectureError(
            f"gemma3 with query_pre_attn_scalar={scalar} (head size {head_dim(hp)})",
            hint="llama.cpp scales Gemma 3 attention by 1/sqrt(head size) only.",
        )
    if hp.get("attn_logit_softcapping"):
        raise UnsupportedArchitectureError("gemma3 with attention logit soft-capping")
    if cap := hp.get("final_logit_softcapping"):
        w.add_final_logit_softcapping(float(cap))
    w.add_rope_freq_base_swa(float(hp.get("rope_local_base_freq") or 10000.0))
    if window := hp.get("sliding_window"):
        w.add_sliding_window(int(window))
        w.add_sliding_window_pattern(sliding_layers(hp))


def sliding_layers(hp: HParams) -> list[bool]:
    """Which blocks use local (sliding-window) attention, from layer_types or the period."""
    n = hp["num_hidden_layers"]
    types = hp.get("layer_types")
    if types:
        return [t == "sliding_attention" for t in types][:n]
    period = int(hp.get("sliding_window_pattern") or 6)
    return [(i + 1) % period != 0 for i in range(n)]


def fix_tensor(family: Family, hp: HParams, kind: gguf.MODEL_TENSOR, data: F32Array) -> F32Array:
    """The weight as llama.cpp's graph for `family` expects it."""
    if family.permute_qk and kind in (T.ATTN_Q, T.ATTN_K):
        heads = hp["num_attention_heads"] if kind == T.ATTN_Q else n_kv_heads(hp)
        data = _rotate_pairs(data, heads)
    if family.norm_shift and kind in _NORMS:
        data = data + np.float32(family.norm_shift)
    return data


_NORMS = frozenset(
    {T.ATTN_NORM, T.ATTN_POST_NORM, T.ATTN_Q_NORM, T.ATTN_K_NORM}
    | {T.FFN_NORM, T.FFN_PRE_NORM, T.FFN_POST_NORM, T.OUTPUT_NORM}
)


def _rotate_pairs(w: F32Array, n_head: int) -> F32Array:
    """Reorder each head's rows from halves (x0..x(d/2-1), y0..) to pairs (x0, y0, x1, y1...)."""
    rows = w.shape[0]
    half = rows // n_head // 2
    split = w.reshape(n_head, 2, half, *w.shape[1:])
    return np.ascontiguousarray(split.swapaxes(1, 2).reshape(w.shape))


def extra_tensors(family: Family, hp: HParams) -> list[Weight]:
    """Tensors llama.cpp needs that the checkpoint does not hold: llama3 rope frequency factors."""
    rs = hp.get("rope_scaling") or {}
    if family.arch != A.LLAMA or (rs.get("rope_type") or rs.get("type")) != "llama3":
        return []
    name = gguf.TENSOR_NAMES[T.ROPE_FREQS] + ".weight"
    return [Weight(name, (head_dim(hp) // 2,), lambda: llama3_rope_factors(hp))]


def llama3_rope_factors(hp: HParams) -> F32Array:
    """Per-frequency divisors of Llama 3's rope scaling: long wavelengths are stretched by
    `factor`, short ones kept, the band between blended (transformers' _compute_llama3_parameters
    expressed as divisors, the form llama.cpp's rope kernel takes)."""
    rs = hp["rope_scaling"]
    dim = head_dim(hp)
    factor = float(rs["factor"])
    low, high = float(rs.get("low_freq_factor", 1.0)), float(rs.get("high_freq_factor", 4.0))
    old_ctx = float(rs.get("original_max_position_embeddings", 8192))
    base = float(hp.get("rope_theta") or 10000.0)
    out = []
    for i in range(0, dim, 2):
        wavelen = 2 * math.pi * base ** (i / dim)
        if wavelen < old_ctx / high:
            out.append(1.0)
        elif wavelen > old_ctx / low:
            out.append(factor)
        else:
            smooth = (old_ctx / wavelen - low) / (high - low)
            out.append(1.0 / ((1 - smooth) / factor + smooth))
    return np.asarray(out, dtype=np.float32)


def check_shapes(hp: HParams) -> None:
    if hp["num_attention_heads"] % n_kv_heads(hp):
        raise ConversionError("attention heads are not a multiple of the key/value heads")
