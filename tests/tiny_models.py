"""Tiny, random LLaMA-architecture GGUF files that llama.cpp really loads, built in milliseconds.

The vocabulary is SentencePiece-style: control tokens, the 256 byte-fallback tokens and a few
hundred word pieces, so any text tokenizes. Weights are random, so the text is nonsense, but
every step of loading, tokenizing and decoding runs for real.
"""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np

WORDS = (
    "the of and to in is was for on that with as by at from his her it an were are which this "
    "be or has had one first new their after who they have two its but been other when there "
    "all during into school time may years more most only over city some world would where "
    "later up such used many can state about national out known university united then made "
    "model memory device small fast token river music house water light north south east west"
).split()


def vocabulary() -> tuple[list[str], list[float], list[int]]:
    tokens = ["<unk>", "<s>", "</s>"]
    types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL]
    tokens += [f"<0x{b:02X}>" for b in range(256)]
    types += [gguf.TokenType.BYTE] * 256
    pieces = [f"\u2581{w}" for w in WORDS] + [chr(c) for c in range(ord("a"), ord("z") + 1)]
    tokens += pieces
    types += [gguf.TokenType.NORMAL] * len(pieces)
    scores = [0.0] * 259 + [-float(i) for i in range(len(pieces))]
    return tokens, scores, [int(t) for t in types]


def write_tiny_llama(
    path: Path,
    n_layers: int = 2,
    n_embd: int = 64,
    n_ff: int = 128,
    n_head: int = 4,
    n_head_kv: int = 2,
    context_length: int = 512,
    weight_type: gguf.GGMLQuantizationType = gguf.GGMLQuantizationType.F32,
    seed: int = 0,
) -> Path:
    rng = np.random.default_rng(seed)
    tokens, scores, types = vocabulary()
    arch = gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA]
    w = gguf.GGUFWriter(str(path), arch)
    w.add_name("tiny-llama")
    w.add_block_count(n_layers)
    w.add_context_length(context_length)
    w.add_embedding_length(n_embd)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_head_kv)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_dimension_count(n_embd // n_head)
    w.add_file_type(
        gguf.LlamaFileType.ALL_F32
        if weight_type == gguf.GGMLQuantizationType.F32
        else gguf.LlamaFileType.MOSTLY_Q8_0
    )
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_add_bos_token(True)

    def add(kind: gguf.MODEL_TENSOR, shape: tuple[int, ...], bid: int | None = None) -> None:
        name = gguf.TENSOR_NAMES[kind].format(bid=bid) + ".weight"
        if len(shape) == 1:
            w.add_tensor(name, np.ones(shape, dtype=np.float32))
            return
        data = (rng.standard_normal(shape) / np.sqrt(shape[-1])).astype(np.float32)
        if weight_type == gguf.GGMLQuantizationType.F32:
            w.add_tensor(name, data)
        else:
            w.add_tensor(name, gguf.quants.quantize(data, weight_type), raw_dtype=weight_type)

    n_vocab, head_dim = len(tokens), n_embd // n_head
    add(gguf.MODEL_TENSOR.TOKEN_EMBD, (n_vocab, n_embd))
    add(gguf.MODEL_TENSOR.OUTPUT_NORM, (n_embd,))
    add(gguf.MODEL_TENSOR.OUTPUT, (n_vocab, n_embd))
    for i in range(n_layers):
        add(gguf.MODEL_TENSOR.ATTN_NORM, (n_embd,), i)
        add(gguf.MODEL_TENSOR.ATTN_Q, (n_embd, n_embd), i)
        add(gguf.MODEL_TENSOR.ATTN_K, (n_head_kv * head_dim, n_embd), i)
        add(gguf.MODEL_TENSOR.ATTN_V, (n_head_kv * head_dim, n_embd), i)
        add(gguf.MODEL_TENSOR.ATTN_OUT, (n_embd, n_embd), i)
        add(gguf.MODEL_TENSOR.FFN_NORM, (n_embd,), i)
        add(gguf.MODEL_TENSOR.FFN_GATE, (n_ff, n_embd), i)
        add(gguf.MODEL_TENSOR.FFN_UP, (n_ff, n_embd), i)
        add(gguf.MODEL_TENSOR.FFN_DOWN, (n_embd, n_ff), i)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path
