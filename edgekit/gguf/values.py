"""Typed, range-checked reads of GGUF metadata values, where edgekit reads them.

A header can be well-formed and still say impossible things: a block count of 2^40 (which would
make the memory estimate loop over every layer), a head count of zero, a negative width, a NaN
RoPE base, a string where a number belongs. Every value edgekit uses passes through here, so a
damaged file is refused with the key, the value and what was expected, before anything loops or
allocates by it. Limits are llama.cpp's where it has one (LLAMA_MAX_LAYERS), and otherwise far
above any released model.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from gguf import GGUFValueType, Keys, LlamaFileType

from edgekit.errors import MetadataTypeError, MetadataValueError, UnsupportedModelError

MAX_LAYERS = 512  # LLAMA_MAX_LAYERS in llama-hparams.h
MAX_WIDTH = 1 << 20  # embedding / feed-forward widths (the largest models: ~30k / ~100k)
MAX_HEADS = 1 << 14
MAX_HEAD_DIM = 1 << 16
MAX_CONTEXT = 1 << 24  # 16M tokens
MAX_VOCAB = 1 << 24

_INT_TYPES = frozenset(
    {
        GGUFValueType.UINT8,
        GGUFValueType.INT8,
        GGUFValueType.UINT16,
        GGUFValueType.INT16,
        GGUFValueType.UINT32,
        GGUFValueType.INT32,
        GGUFValueType.UINT64,
        GGUFValueType.INT64,
    }
)
# llama.cpp hard-codes the sliding-window layout of some architectures instead of storing it:
# every Nth layer attends globally, the others only see the window.
_SWA_PATTERN_BY_ARCH = {"gemma2": 2, "gemma3": 6, "cohere2": 4}
_HINT = "The file is damaged or was written by a broken converter: convert or download it again."


@dataclass(frozen=True)
class SkippedArray:
    """A long array (e.g. the vocabulary) whose elements were not kept."""

    item_type: GGUFValueType
    length: int


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _describe(value: Any) -> str:
    if isinstance(value, list):
        return f"an array of {len(value)}"
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    return f"{type(value).__name__} {value!r}"


class MetadataReader:
    """Reads keys of one header, raising MetadataTypeError / MetadataValueError with the key."""

    def __init__(
        self, path: Path, metadata: dict[str, Any], types: dict[str, GGUFValueType]
    ) -> None:
        self.path = path
        self.md = metadata
        self.types = types

    def _type_error(self, key: str, value: Any, expected: str) -> MetadataTypeError:
        return MetadataTypeError(
            f"{self.path}: {key} is {_describe(value)}, but must be {expected}", hint=_HINT
        )

    def _range_error(self, key: str, value: Any, lo: int, hi: int) -> MetadataValueError:
        return MetadataValueError(
            f"{self.path}: {key} is {value:,}, outside the possible range {lo:,}..{hi:,}",
            hint=_HINT,
        )

    def missing(self, key: str) -> UnsupportedModelError:
        return UnsupportedModelError(
            f"{self.path}: missing {key} in the GGUF metadata",
            hint="edgekit needs a language model GGUF with llama.cpp's standard keys.",
        )

    def integer(self, key: str, lo: int, hi: int, default: int | None = None) -> int:
        """A scalar integer key in [lo, hi]; `default` (unchecked) when absent."""
        if key not in self.md:
            if default is None:
                raise self.missing(key)
            return default
        value = self.md[key]
        if not _is_int(value) or self.types.get(key) not in _INT_TYPES:
            raise self._type_error(key, value, "an integer")
        if not lo <= value <= hi:
            raise self._range_error(key, value, lo, hi)
        return int(value)

    def per_layer(
        self, key: str, lo: int, hi: int, n_layers: int, default: int | None = None
    ) -> int:
        """An integer key that may also be one value per layer; returns the largest (which
        bounds memory). Per-layer entries may be 0 (e.g. no KV heads in a recurrent layer)."""
        value = self.md.get(key)
        if not isinstance(value, list):
            if self.types.get(key) == GGUFValueType.ARRAY:  # too long to be kept
                raise MetadataValueError(
                    f"{self.path}: {key} holds more values than any model has layers", hint=_HINT
                )
            return self.integer(key, lo, hi, default)
        if len(value) != n_layers:
            raise MetadataValueError(
                f"{self.path}: {key} has {len(value)} per-layer values for {n_layers} layers",
                hint=_HINT,
            )
        if not all(_is_int(v) for v in value):
            raise self._type_error(key, value, "integers")
        for v in value:
            if not 0 <= v <= hi:
                raise self._range_error(key, v, 0, hi)
        top = max(value)
        if top < lo:
            raise self._range_error(key, top, lo, hi)
        return int(top)

    def string(self, key: str, default: str | None = None) -> str:
        if key not in self.md:
            if default is None:
                raise self.missing(key)
            return default
        value = self.md[key]
        if not isinstance(value, str):
            raise self._type_error(key, value, "a string")
        return value

    def check_finite(self, prefix: str) -> None:
        """No float hyperparameter of the architecture may be NaN or infinite."""
        for key, value in self.md.items():
            if not key.startswith(prefix):
                continue
            values: Iterable[Any] = value if isinstance(value, list) else (value,)
            for v in values:
                if isinstance(v, float) and not math.isfinite(v):
                    raise MetadataValueError(
                        f"{self.path}: {key} is {v}, which no model can run with", hint=_HINT
                    )

    def token_ids(self, keys: Iterable[str], vocab_size: int) -> None:
        """Special tokens must exist: llama.cpp silently swaps an out-of-range id for a default
        one, which for some vocabularies is a different special token (a model that stops at
        once or never)."""
        for key in keys:
            if key in self.md:
                hi = vocab_size - 1 if vocab_size > 0 else MAX_VOCAB
                self.integer(key, 0, hi)


def token_count(r: MetadataReader) -> int:
    tokens = r.md.get(Keys.Tokenizer.LIST)
    if tokens is None:
        return 0
    if isinstance(tokens, SkippedArray) and tokens.item_type == GGUFValueType.STRING:
        return tokens.length
    if isinstance(tokens, list) and all(isinstance(t, str) for t in tokens):
        return len(tokens)
    raise MetadataTypeError(
        f"{r.path}: {Keys.Tokenizer.LIST} is not an array of strings",
        hint=_HINT,
    )


def swa_layers(r: MetadataReader, arch: str, n_layers: int) -> frozenset[int]:
    if not r.md.get(Keys.Attention.SLIDING_WINDOW.format(arch=arch)):
        return frozenset()
    key = Keys.Attention.SLIDING_WINDOW_PATTERN.format(arch=arch)
    pattern = r.md.get(key)
    if isinstance(pattern, list):  # one flag per layer
        if len(pattern) != n_layers or not all(isinstance(p, bool | int) for p in pattern):
            raise MetadataValueError(
                f"{r.path}: {key} must hold one flag per layer ({n_layers})",
                hint=_HINT,
            )
        return frozenset(i for i, is_swa in enumerate(pattern) if is_swa)
    n = r.integer(key, 0, MAX_LAYERS, _SWA_PATTERN_BY_ARCH.get(arch, 0))
    if n <= 0:
        return frozenset()  # unknown layout: count every layer as full attention (safe side)
    return frozenset(i for i in range(n_layers) if (i + 1) % n != 0)


def file_type_name(r: MetadataReader) -> str:
    if Keys.General.FILE_TYPE not in r.md:
        return "unknown"
    value = r.integer(Keys.General.FILE_TYPE, 0, 2**32 - 1)
    try:
        return LlamaFileType(value).name.removeprefix("MOSTLY_")
    except ValueError:
        return f"type {value}"


# --- what llama.cpp's loader asserts on ------------------------------------------------------
# Each check below stands for a GGML_ASSERT / GGML_ABORT (or a C++ exception thrown through the C
# API, which ends in std::terminate) that a one-field edit reaches in llama.cpp 0.3.36's loader:
# the process dies with SIGABRT and no message, so these are refused before anything loads.

# tokenizer.ggml.model values llama.cpp knows (src/llama-vocab.cpp, llama_vocab::impl::load)
TOKENIZER_MODELS = frozenset(
    {"no_vocab", "none", "llama", "bert", "gpt2", "hybriddna", "whitespace", "t5", "rwkv",
     "plamo2", "gemma4"}
)  # fmt: skip
_TOKEN_TYPE_BYTE = 6  # LLAMA_TOKEN_TYPE_BYTE
# Vocabulary types whose token_to_byte reads "<0xXX>" (and aborts for any other type).
_BYTE_TOKEN_MODELS = frozenset({"llama", "t5", "gpt2", "hybriddna", "whitespace", "gemma4"})
TOKEN_TYPE_KEY = "tokenizer.ggml.token_type"
TOKENIZER_MODEL_KEY = "tokenizer.ggml.model"


@dataclass
class VocabSummary:
    """The token texts and types the header reader saw (not kept in ModelInfo)."""

    tokens: list[bytes] | None = None
    token_types: bytes | None = None  # little-endian int32 per token


def _byte_tokens(summary: VocabSummary, n_tokens: int) -> list[int]:
    """Ids of the tokens typed BYTE."""
    raw = summary.token_types or b""
    types = np.frombuffer(raw[: 4 * n_tokens], dtype="<i4", count=min(len(raw) // 4, n_tokens))
    return [int(i) for i in np.flatnonzero(types == _TOKEN_TYPE_BYTE)]


def check_vocab(r: MetadataReader, summary: VocabSummary) -> None:
    """A vocabulary llama.cpp can load and tokenize with (module section comment)."""
    if TOKENIZER_MODEL_KEY not in r.md:
        return
    model = r.string(TOKENIZER_MODEL_KEY)
    if model not in TOKENIZER_MODELS:
        raise UnsupportedModelError(
            f"{r.path}: {TOKENIZER_MODEL_KEY} is {model[:40]!r}, a tokenizer llama.cpp does not "
            f"know ({', '.join(sorted(TOKENIZER_MODELS))})",
            hint=_HINT,
        )
    bpe = model in {"gpt2", "hybriddna", "whitespace", "gemma4"}
    if bpe and "tokenizer.ggml.merges" not in r.md and r.md.get("tokenizer.ggml.pre") != "kimi-k2":
        raise MetadataValueError(
            f"{r.path}: the {model!r} tokenizer needs tokenizer.ggml.merges, which is missing",
            hint=_HINT,
        )
    tokens = summary.tokens
    if tokens is None:
        return
    seen = set(tokens)
    n_empty = tokens.count(b"")  # empty tokens get unique names at load
    if len(seen) < len(tokens) - max(0, n_empty - 1):
        _raise_duplicate(r, tokens)
    byte_tokens = _byte_tokens(summary, len(tokens))
    if byte_tokens and model not in _BYTE_TOKEN_MODELS:
        raise MetadataValueError(
            f"{r.path}: the vocabulary has byte tokens (token {byte_tokens[0]}), which the "
            f"{model!r} tokenizer cannot decode: llama.cpp aborts on them",
            hint=_HINT,
        )
    short = next((i for i in byte_tokens if len(tokens[i]) < 3), None)
    if short is not None:  # llama.cpp reads the XX of <0xXX> with substr(3, 2), which throws
        raise MetadataValueError(
            f"{r.path}: byte token {short} is {tokens[short]!r}, not of the form <0xXX>",
            hint=_HINT,
        )
    if model == "llama":
        _check_byte_fallback(r, seen)


def _raise_duplicate(r: MetadataReader, tokens: list[bytes]) -> None:
    first: dict[bytes, int] = {}
    for i, text in enumerate(tokens):
        if text and first.setdefault(text, i) != i:
            raise MetadataValueError(
                f"{r.path}: token {i} ({text[:40]!r}) repeats token {first[text]} in "
                "tokenizer.ggml.tokens; llama.cpp aborts on a duplicated token",
                hint=_HINT,
            )


def _check_byte_fallback(r: MetadataReader, seen: set[bytes]) -> None:
    """A SentencePiece vocabulary spells text it has no token for as byte tokens; llama.cpp
    throws through its C API (an abort) when one of those is missing. Vocabularies without byte
    fallback at all are left alone: they map unknown text to <unk> before that point."""
    missing = [
        b
        for b in range(256)
        if f"<0x{b:02X}>".encode() not in seen and (b == 0 or bytes([b]) not in seen)
    ]
    if missing and len(missing) < 256:
        raise MetadataValueError(
            f"{r.path}: the vocabulary lacks {len(missing)} of its 256 byte tokens (e.g. "
            f"<0x{missing[0]:02X}>); llama.cpp aborts on text that needs one",
            hint=_HINT,
        )


def _per_layer_list(r: MetadataReader, key: str, n_layers: int, default: list[int]) -> list[int]:
    value = r.md.get(key)
    if isinstance(value, list):
        return [int(v) for v in value]
    if isinstance(value, int):
        return [int(value)] * n_layers
    return default


def check_attention(r: MetadataReader, arch: str, n_layers: int, tensors: set[str]) -> None:
    """Every block that has attention weights has heads, and its query heads divide evenly into
    its KV heads (ggml_mul_mat asserts on the broadcast). A zero KV head count is right only for
    blocks without attention (recurrent layers of hybrid models)."""
    heads_key = Keys.Attention.HEAD_COUNT.format(arch=arch)
    kv_key = Keys.Attention.HEAD_COUNT_KV.format(arch=arch)
    heads = _per_layer_list(r, heads_key, n_layers, [0] * n_layers)
    kv = _per_layer_list(r, kv_key, n_layers, heads)
    for i in range(n_layers):
        if not any(f"blk.{i}.attn_{w}.weight" in tensors for w in ("q", "k", "qkv")):
            continue
        if heads[i] <= 0 or kv[i] <= 0:
            key = heads_key if heads[i] <= 0 else kv_key
            raise MetadataValueError(
                f"{r.path}: block {i} has attention weights, but {key} gives it no heads",
                hint=_HINT,
            )
        if heads[i] % kv[i]:
            raise MetadataValueError(
                f"{r.path}: block {i} has {heads[i]} query heads, not a multiple of its "
                f"{kv[i]} KV heads",
                hint=_HINT,
            )


def check_rope(r: MetadataReader, arch: str, head_dim_k: int) -> None:
    """RoPE rotates pairs of a head's values: an odd count or more than the head holds makes
    ggml abort, and 0 made llama.cpp spin at 100% CPU here."""
    for suffix, width in (("", head_dim_k), ("_swa", None)):
        key = f"{arch}.rope.dimension_count{suffix}"
        if key not in r.md:
            continue
        if width is None:
            width = r.integer(f"{arch}.attention.key_length_swa", 1, MAX_HEAD_DIM, head_dim_k)
        n_rot = r.integer(key, 2, width)
        if n_rot % 2:
            raise MetadataValueError(
                f"{r.path}: {key} is {n_rot}; RoPE needs an even number of dimensions",
                hint=_HINT,
            )
