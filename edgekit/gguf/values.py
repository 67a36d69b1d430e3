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
