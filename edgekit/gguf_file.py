"""A fast, validating reader of a GGUF file's header: metadata and tensor table, no tensor data.

gguf-py's GGUFReader materialises every vocabulary entry as numpy views and takes ~15 s on the
default model's 262k-token vocab here; the run path only needs the header, so this reader walks
large arrays without keeping them (well under a second) and checks the file is complete.
Format constants come from gguf's enums.
"""

from __future__ import annotations

import mmap
import struct
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gguf import (
    GGML_QUANT_SIZES,
    GGUF_DEFAULT_ALIGNMENT,
    GGUF_MAGIC,
    GGMLQuantizationType,
    GGUFValueType,
    Keys,
    LlamaFileType,
)

from edgekit.errors import (
    ModelNotFoundError,
    NotAGGUFError,
    TruncatedModelError,
    UnsupportedModelError,
)

# llama.cpp hard-codes the sliding-window layout of some architectures instead of storing it:
# every Nth layer attends globally, the others only see the window.
_SWA_PATTERN_BY_ARCH = {"gemma2": 2, "gemma3": 6, "cohere2": 4}

# Arrays longer than this (vocabularies, merges) are skipped: only their type and length are kept.
_MAX_KEPT_ARRAY = 64

_SCALARS: dict[GGUFValueType, str] = {
    GGUFValueType.UINT8: "<B",
    GGUFValueType.INT8: "<b",
    GGUFValueType.UINT16: "<H",
    GGUFValueType.INT16: "<h",
    GGUFValueType.UINT32: "<I",
    GGUFValueType.INT32: "<i",
    GGUFValueType.FLOAT32: "<f",
    GGUFValueType.BOOL: "<?",
    GGUFValueType.UINT64: "<Q",
    GGUFValueType.INT64: "<q",
    GGUFValueType.FLOAT64: "<d",
}


@dataclass(frozen=True)
class SkippedArray:
    """A long array (e.g. the vocabulary) whose elements were not kept."""

    item_type: GGUFValueType
    length: int


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]
    ggml_type: GGMLQuantizationType
    offset: int  # from the start of the tensor data section

    @property
    def n_elements(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def n_bytes(self) -> int:
        block_size, type_size = GGML_QUANT_SIZES[self.ggml_type]
        return self.n_elements // block_size * type_size


@dataclass
class GGUFHeader:
    path: Path
    version: int
    metadata: dict[str, Any]
    tensors: list[TensorInfo]
    data_offset: int
    file_size: int
    extra: dict[str, Any] = field(default_factory=dict)


class _Cursor:
    def __init__(self, buf: mmap.mmap | bytes, path: Path) -> None:
        self.buf = buf
        self.pos = 0
        self.path = path

    def take(self, fmt: str) -> Any:
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.buf):
            raise TruncatedModelError(
                f"{self.path} ends inside its GGUF header (at byte {self.pos})",
                hint="The file is incomplete: download or convert it again.",
            )
        (value,) = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += size
        return value

    def string(self) -> str:
        n = self.take("<Q")
        if self.pos + n > len(self.buf):
            raise TruncatedModelError(
                f"{self.path} ends inside its GGUF header (string at byte {self.pos})",
                hint="The file is incomplete: download or convert it again.",
            )
        raw = bytes(self.buf[self.pos : self.pos + n])
        self.pos += n
        return raw.decode("utf-8", errors="replace")

    def value(self, vtype: GGUFValueType) -> Any:
        if vtype == GGUFValueType.STRING:
            return self.string()
        if vtype == GGUFValueType.ARRAY:
            return self.array()
        try:
            return self.take(_SCALARS[vtype])
        except KeyError:
            raise NotAGGUFError(f"{self.path}: unknown GGUF value type {vtype}") from None

    def value_type(self) -> GGUFValueType:
        raw = self.take("<I")
        try:
            return GGUFValueType(raw)
        except ValueError:
            raise NotAGGUFError(
                f"{self.path}: corrupt GGUF header (value type {raw} at byte {self.pos - 4})",
                hint="The file is damaged: download or convert it again.",
            ) from None

    def array(self) -> list[Any] | SkippedArray:
        item_type = self.value_type()
        n = self.take("<Q")
        if n <= _MAX_KEPT_ARRAY:
            return [self.value(item_type) for _ in range(n)]
        if item_type == GGUFValueType.STRING:
            for _ in range(n):
                length = self.take("<Q")
                self.pos += length
        else:
            self.pos += n * struct.calcsize(_SCALARS[item_type])
        if self.pos > len(self.buf):
            raise TruncatedModelError(f"{self.path} ends inside a metadata array")
        return SkippedArray(item_type, n)


def read_header(path: str | Path) -> GGUFHeader:
    """Parse and validate a GGUF file's header; raise a ModelFileError subclass if it is bad."""
    p = Path(path)
    if not p.exists():
        raise ModelNotFoundError(f"model file not found: {p}", hint="Check the path.")
    if p.is_dir():
        raise NotAGGUFError(f"{p} is a directory, not a GGUF file")
    size = p.stat().st_size
    if size < 24:
        raise NotAGGUFError(f"{p} is not a GGUF file ({size} bytes)")
    with p.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        return _parse(_Cursor(buf, p), size)


def _parse(cur: _Cursor, size: int) -> GGUFHeader:
    magic = cur.take("<I")
    if magic != GGUF_MAGIC:
        raise NotAGGUFError(
            f"{cur.path} is not a GGUF file (magic {bytes(cur.buf[:4])!r})",
            hint="edgekit runs GGUF files; convert other formats with `edgekit convert`.",
        )
    version = cur.take("<I")
    if version not in (2, 3):
        raise UnsupportedModelError(f"{cur.path}: GGUF version {version} is not supported")
    n_tensors = cur.take("<Q")
    n_kv = cur.take("<Q")
    metadata: dict[str, Any] = {}
    for _ in range(n_kv):
        key = cur.string()
        metadata[key] = cur.value(cur.value_type())
    tensors = [_tensor_info(cur) for _ in range(n_tensors)]
    alignment = int(metadata.get(Keys.General.ALIGNMENT, GGUF_DEFAULT_ALIGNMENT))
    data_offset = -(-cur.pos // alignment) * alignment
    header = GGUFHeader(cur.path, version, metadata, tensors, data_offset, size)
    _check_complete(header)
    return header


def _tensor_info(cur: _Cursor) -> TensorInfo:
    name = cur.string()
    n_dims = cur.take("<I")
    shape = tuple(cur.take("<Q") for _ in range(n_dims))
    raw_type = cur.take("<I")
    try:
        ggml_type = GGMLQuantizationType(raw_type)
    except ValueError:
        raise UnsupportedModelError(
            f"{cur.path}: tensor {name} has unknown ggml type {raw_type}",
            hint="The file may need a newer llama.cpp, or it is damaged.",
        ) from None
    return TensorInfo(name, shape, ggml_type, cur.take("<Q"))


def _check_complete(h: GGUFHeader) -> None:
    end = max((h.data_offset + t.offset + t.n_bytes for t in h.tensors), default=h.data_offset)
    if end > h.file_size:
        raise TruncatedModelError(
            f"{h.path} is truncated: its tensors need {end:,} bytes but the file has "
            f"{h.file_size:,}",
            hint="The download or conversion was interrupted: fetch or convert it again.",
        )


@dataclass(frozen=True)
class ModelInfo:
    """What edgekit needs to know about a GGUF model, derived from its header."""

    path: Path
    architecture: str
    name: str
    block_count: int
    n_embd: int
    feed_forward_length: int  # 0 where the header has none (or it varies per layer)
    n_head: int
    n_head_kv: int
    head_dim_k: int
    head_dim_v: int
    context_length: int
    sliding_window: int
    vocab_size: int
    file_type: str
    file_size: int
    tensor_bytes: int
    n_params: int
    types: dict[str, tuple[int, int]]  # ggml type name -> (tensor count, bytes)
    has_chat_template: bool
    swa_layers: frozenset[int] = frozenset()  # blocks whose KV cache only holds the window
    tensors: tuple[TensorInfo, ...] = ()

    @property
    def bits_per_weight(self) -> float:
        return 8 * self.tensor_bytes / self.n_params if self.n_params else 0.0


def model_info(header: GGUFHeader) -> ModelInfo:
    md = header.metadata
    arch = md.get(Keys.General.ARCHITECTURE)
    if not isinstance(arch, str):
        raise UnsupportedModelError(f"{header.path}: no general.architecture in the GGUF metadata")

    def llm(key: str, default: int | None = None) -> int:
        value = md.get(key.format(arch=arch), default)
        if isinstance(value, list):  # per-layer arrays (e.g. head counts): the max bounds memory
            value = max(value)
        if value is None:
            raise UnsupportedModelError(
                f"{header.path}: missing {key.format(arch=arch)} in the GGUF metadata",
                hint="edgekit needs a language model GGUF with llama.cpp's standard keys.",
            )
        return int(value)

    n_embd = llm(Keys.LLM.EMBEDDING_LENGTH)
    n_head = llm(Keys.Attention.HEAD_COUNT)
    head_dim = n_embd // n_head if n_head else 0
    counts: Counter[str] = Counter()
    sizes: Counter[str] = Counter()
    for t in header.tensors:
        counts[t.ggml_type.name] += 1
        sizes[t.ggml_type.name] += t.n_bytes
    vocab = md.get(Keys.Tokenizer.LIST)
    vocab_size = len(vocab) if isinstance(vocab, list) else getattr(vocab, "length", 0)
    return ModelInfo(
        path=header.path,
        architecture=arch,
        name=str(md.get(Keys.General.NAME, header.path.stem)),
        block_count=llm(Keys.LLM.BLOCK_COUNT),
        n_embd=n_embd,
        feed_forward_length=llm(Keys.LLM.FEED_FORWARD_LENGTH, 0),
        n_head=n_head,
        n_head_kv=llm(Keys.Attention.HEAD_COUNT_KV, n_head),
        head_dim_k=llm(Keys.Attention.KEY_LENGTH, head_dim),
        head_dim_v=llm(Keys.Attention.VALUE_LENGTH, head_dim),
        context_length=llm(Keys.LLM.CONTEXT_LENGTH, 2048),
        sliding_window=llm(Keys.Attention.SLIDING_WINDOW, 0),
        vocab_size=llm(Keys.LLM.VOCAB_SIZE, vocab_size),
        file_type=_file_type_name(md.get(Keys.General.FILE_TYPE)),
        file_size=header.file_size,
        tensor_bytes=sum(sizes.values()),
        n_params=sum(t.n_elements for t in header.tensors),
        types={k: (counts[k], sizes[k]) for k in sorted(counts, key=lambda k: -sizes[k])},
        has_chat_template=Keys.Tokenizer.CHAT_TEMPLATE in md,
        swa_layers=_swa_layers(md, arch, llm(Keys.LLM.BLOCK_COUNT)),
        tensors=tuple(header.tensors),
    )


def _swa_layers(md: dict[str, Any], arch: str, n_layers: int) -> frozenset[int]:
    if not md.get(Keys.Attention.SLIDING_WINDOW.format(arch=arch)):
        return frozenset()
    pattern = md.get(Keys.Attention.SLIDING_WINDOW_PATTERN.format(arch=arch))
    if isinstance(pattern, list):  # one flag per layer
        return frozenset(i for i, is_swa in enumerate(pattern) if is_swa)
    n = int(pattern) if pattern is not None else _SWA_PATTERN_BY_ARCH.get(arch, 0)
    if n <= 0:
        return frozenset()  # unknown layout: count every layer as full attention (safe side)
    return frozenset(i for i in range(n_layers) if (i + 1) % n != 0)


def _file_type_name(value: Any) -> str:
    if value is None:
        return "unknown"
    try:
        return LlamaFileType(int(value)).name.removeprefix("MOSTLY_")
    except ValueError:
        return f"type {value}"


def load_model_info(path: str | Path) -> ModelInfo:
    return model_info(read_header(path))
