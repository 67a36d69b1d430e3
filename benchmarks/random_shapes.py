"""Random-weight GGUFs of real model shapes (Qwen2 0.5B and 1.5B, a Llama 1.2B), for memory and
time only: no weights of those sizes are reachable here, and random weights say nothing about
quality.

Each is written the way users bring a model: an F16 GGUF streamed tensor by tensor (never the
whole model in memory), then llama-quantize to Q4_K_M. The tokenizer is a synthetic byte-level BPE
of exactly the shape's vocabulary size (the 256 GPT-2 byte symbols, their pairs, then triples),
so every text tokenizes and the embedding has its real size.

    python -m benchmarks.random_shapes qwen2-0.5b /tmp/shapes   # prints the Q4_K_M file's path
"""

from __future__ import annotations

import argparse
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np

from edgekit.backends.llama_cpp.tools import QuantizeRequest, quantize

T = gguf.MODEL_TENSOR


@dataclass(frozen=True)
class Shape:
    arch: str  # gguf architecture name
    n_embd: int
    n_ff: int
    n_layer: int
    n_head: int
    n_head_kv: int
    n_vocab: int
    qkv_bias: bool  # Qwen2's q/k/v projections carry a bias

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head


# The published configs' shapes (tied embeddings in all three).
SHAPES = {
    "qwen2-0.5b": Shape("qwen2", 896, 4864, 24, 14, 2, 151936, True),
    "qwen2-1.5b": Shape("qwen2", 1536, 8960, 28, 12, 2, 151936, True),
    "llama-1.2b": Shape("llama", 2048, 8192, 16, 32, 8, 128256, False),
}


def _byte_symbols() -> list[str]:
    """GPT-2's printable stand-in for each byte (what byte-level BPE vocabularies store)."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    keep += list(range(ord("®"), ord("ÿ") + 1))
    extra = iter(range(256, 512))
    return [chr(b) if b in keep else chr(next(extra)) for b in range(256)]


def vocabulary(n_vocab: int) -> tuple[list[str], list[str]]:
    """(tokens, merges): byte symbols, then pairs, then pair + symbol, until n_vocab - 1; the last
    id is <|endoftext|>."""
    sym = _byte_symbols()
    tokens, merges = list(sym), []
    for a, b in itertools.product(sym, sym):
        if len(tokens) >= n_vocab - 1:
            break
        tokens.append(a + b)
        merges.append(f"{a} {b}")
    for (a, b), c in itertools.product(itertools.product(sym, sym), sym):
        if len(tokens) >= n_vocab - 1:
            break
        tokens.append(a + b + c)
        merges.append(f"{a + b} {c}")
    return [*tokens, "<|endoftext|>"], merges


def _tensors(s: Shape) -> Iterator[tuple[str, tuple[int, ...]]]:
    """(name, numpy shape) in the order llama.cpp's converters write them."""

    def name(t: gguf.MODEL_TENSOR, bid: int | None = None, what: str = "weight") -> str:
        return gguf.TENSOR_NAMES[t].format(bid=bid) + f".{what}"

    kv = s.n_head_kv * s.head_dim
    yield name(T.TOKEN_EMBD), (s.n_vocab, s.n_embd)
    yield name(T.OUTPUT_NORM), (s.n_embd,)
    for i in range(s.n_layer):
        yield name(T.ATTN_NORM, i), (s.n_embd,)
        for t, rows in ((T.ATTN_Q, s.n_embd), (T.ATTN_K, kv), (T.ATTN_V, kv)):
            yield name(t, i), (rows, s.n_embd)
            if s.qkv_bias:
                yield name(t, i, "bias"), (rows,)
        yield name(T.ATTN_OUT, i), (s.n_embd, s.n_embd)
        yield name(T.FFN_NORM, i), (s.n_embd,)
        yield name(T.FFN_GATE, i), (s.n_ff, s.n_embd)
        yield name(T.FFN_UP, i), (s.n_ff, s.n_embd)
        yield name(T.FFN_DOWN, i), (s.n_embd, s.n_ff)


def _values(name: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    if name.endswith(".bias"):
        return np.zeros(shape, dtype=np.float32)
    if len(shape) == 1:
        return np.ones(shape, dtype=np.float32)
    return (rng.standard_normal(shape, dtype=np.float32) * 0.02).astype(np.float16)


def write_f16(path: Path, s: Shape, seed: int = 0) -> Path:
    """The F16 GGUF, one tensor in memory at a time."""
    w = gguf.GGUFWriter(str(path), s.arch)
    w.add_name(f"random-{s.arch}")
    w.add_block_count(s.n_layer)
    w.add_context_length(4096)
    w.add_embedding_length(s.n_embd)
    w.add_feed_forward_length(s.n_ff)
    w.add_head_count(s.n_head)
    w.add_head_count_kv(s.n_head_kv)
    w.add_rope_freq_base(1e6)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    tokens, merges = vocabulary(s.n_vocab)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("qwen2" if s.arch == "qwen2" else "default")
    w.add_token_list(tokens)
    w.add_token_types([gguf.TokenType.NORMAL] * (len(tokens) - 1) + [gguf.TokenType.CONTROL])
    w.add_token_merges(merges)
    w.add_bos_token_id(len(tokens) - 1)
    w.add_eos_token_id(len(tokens) - 1)
    w.add_add_bos_token(False)
    specs = list(_tensors(s))
    for name, shape in specs:
        dtype = np.float32 if len(shape) == 1 else np.float16
        nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        w.add_tensor_info(name, shape, np.dtype(dtype), nbytes)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    rng = np.random.default_rng(seed)
    for name, shape in specs:
        w.write_tensor_data(_values(name, shape, rng))
    w.close()
    return path


def n_params(s: Shape) -> int:
    return sum(int(np.prod(shape)) for _, shape in _tensors(s))


def random_gguf(name: str, folder: Path, ftype: str = "Q4_K_M") -> Path:
    """`folder/random-<name>.<ftype>.gguf`, built once (the F16 file is removed afterwards)."""
    out = folder / f"random-{name}.{ftype}.gguf"
    if out.is_file():
        return out
    folder.mkdir(parents=True, exist_ok=True)
    f16 = write_f16(folder / f"random-{name}.F16.gguf.partial", SHAPES[name])
    tmp = out.with_suffix(".partial")
    try:
        quantize(QuantizeRequest(f16, tmp, ftype))
        tmp.rename(out)
    finally:
        f16.unlink(missing_ok=True)
        tmp.unlink(missing_ok=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("shape", choices=sorted(SHAPES))
    ap.add_argument("folder", type=Path)
    ap.add_argument("--ftype", default="Q4_K_M")
    args = ap.parse_args()
    print(random_gguf(args.shape, args.folder, args.ftype))


if __name__ == "__main__":
    main()
