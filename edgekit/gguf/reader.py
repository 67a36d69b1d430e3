"""A fast, strict reader of a GGUF file's header: metadata and tensor table, no tensor data.

gguf-py's GGUFReader materialises every vocabulary entry as numpy views and takes ~15 s on the
default model's 262k-token vocab here; the run path only needs the header, so this reader walks
large arrays without keeping them (well under a second) and checks the file is complete.

The file may be damaged or hostile, so every count, length and size is checked against the bytes
left in the file and a sane limit before anything is allocated or looped over, the tensor table is
held to llama.cpp's own rules (ggml/src/gguf.cpp), and each kind of damage has its own error class
(edgekit.errors). Values are read by cursor.py and type- and range-checked where they are used
(values.py).
Format constants come from gguf's enums.
"""

from __future__ import annotations

import mmap
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
)

from edgekit.errors import (
    CorruptModelError,
    MetadataTypeError,
    MetadataValueError,
    ModelFileError,
    ModelNotFoundError,
    NotAGGUFError,
    TensorInfoError,
    TruncatedModelError,
    UnsupportedModelError,
)
from edgekit.gguf.cursor import HINT_DAMAGED, Cursor
from edgekit.gguf.values import (
    MAX_CONTEXT,
    MAX_HEAD_DIM,
    MAX_HEADS,
    MAX_LAYERS,
    MAX_VOCAB,
    MAX_WIDTH,
    MetadataReader,
    SkippedArray,  # re-exported: part of this module's results (GGUFHeader.metadata)
    VocabSummary,
    check_attention,
    check_rope,
    check_vocab,
    file_type_name,
    swa_layers,
    token_count,
)

# Limits checked BEFORE anything is allocated or looped over, so that a few edited bytes cannot make
# the reader loop for minutes or fill memory (those of single values: cursor.py). Each is far
# above any released model. llama.cpp's own (ggml/src/gguf.cpp: 2^30 elements or bytes) are
# looser: it allocates in C++, we in Python objects, and we must stay fast (a full read of the
# default model's header takes ~30 ms of CPU). llama-cpp-python reads every key back through
# llama.cpp one by one at load, in time that grows with the square of the count: 60,000 keys took
# 57 s here, 4,096 take ~0.3 s.
MAX_KV = 1 << 12  # real models have ~30-60 metadata keys, a few hundred at most
MAX_TENSORS = 1 << 20  # the largest MoE files have a few thousand
MAX_TENSOR_NAME = 63  # GGML_MAX_NAME - 1
MAX_DIMS = 4  # GGML_MAX_DIMS
__all__ = [
    "GGUFHeader",
    "ModelInfo",
    "SkippedArray",
    "TensorInfo",
    "load_model_info",
    "model_info",
    "read_header",
]


@dataclass(frozen=True, slots=True)
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
    value_types: dict[str, GGUFValueType] = field(default_factory=dict)  # as stored in the file
    vocab: VocabSummary = field(default_factory=VocabSummary)  # what llama.cpp's loader asserts on


def read_header(path: str | Path) -> GGUFHeader:
    """Parse and validate a GGUF file's header; raise a ModelFileError subclass if it is bad."""
    p = Path(path)
    if not p.exists():
        raise ModelNotFoundError(f"model file not found: {p}", hint="Check the path.")
    if p.is_dir():
        raise NotAGGUFError(f"{p} is a directory, not a GGUF file")
    try:
        size = p.stat().st_size
        if size < 24:
            raise NotAGGUFError(f"{p} is not a GGUF file ({size} bytes)")
        with p.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            return _parse(Cursor(buf, p), size)
    except OSError as e:  # unreadable (permissions), gone meanwhile, or a file mmap refuses
        raise ModelFileError(
            f"cannot read {p}: {e.strerror or e}", hint="Check the path."
        ) from None


def _parse(cur: Cursor, size: int) -> GGUFHeader:
    magic = cur.take("<I")
    if magic != GGUF_MAGIC:
        raise NotAGGUFError(
            f"{cur.path} is not a GGUF file (magic {bytes(cur.buf[:4])!r})",
            hint="edgekit runs GGUF files; convert other formats with `edgekit convert`.",
        )
    version = cur.take("<I")
    if version not in (2, 3):
        raise UnsupportedModelError(f"{cur.path}: GGUF version {version} is not supported")
    # Smallest entries: a tensor has a name length, n_dims, type and offset (24 bytes); a KV pair
    # a key length, a non-empty key, a type and a one-byte value (14 bytes).
    n_tensors = cur.count("tensors", 24, MAX_TENSORS)
    n_kv = cur.count("metadata keys", 14, MAX_KV)
    metadata: dict[str, Any] = {}
    types: dict[str, GGUFValueType] = {}
    for _ in range(n_kv):
        key = cur.key = _key(cur, metadata)
        types[key] = cur.value_type()
        metadata[key] = cur.value(types[key])
    alignment = _alignment(cur, metadata, types)
    tensors = _tensor_table(cur, n_tensors, alignment)
    data_offset = -(-cur.pos // alignment) * alignment
    header = GGUFHeader(cur.path, version, metadata, tensors, data_offset, size)
    header.value_types = types
    header.vocab = cur.vocab
    _check_complete(header)
    return header


def _key(cur: Cursor, seen: dict[str, Any]) -> str:
    at = cur.pos
    key = cur.string(limit=1 << 16)
    if not key or key in seen:
        why = "an empty key" if not key else f"key {key!r} a second time"
        raise CorruptModelError(f"{cur.path}: the header has {why} (byte {at})", hint=HINT_DAMAGED)
    return key


def _alignment(cur: Cursor, md: dict[str, Any], types: dict[str, GGUFValueType]) -> int:
    key = Keys.General.ALIGNMENT
    if key not in md:
        return GGUF_DEFAULT_ALIGNMENT
    if types[key] != GGUFValueType.UINT32:  # the type llama.cpp requires
        raise MetadataTypeError(
            f"{cur.path}: {key} is {types[key].name}, not UINT32", hint=HINT_DAMAGED
        )
    value: int = md[key]
    if value <= 0 or value & (value - 1):
        raise MetadataValueError(
            f"{cur.path}: {key} is {value}, not a power of two", hint=HINT_DAMAGED
        )
    if value < GGUF_DEFAULT_ALIGNMENT:
        # llama.cpp maps tensor data and hands it to its CPU back end, which aborts on a buffer
        # that is not 32-byte aligned (TENSOR_ALIGNMENT in ggml-backend.cpp).
        raise MetadataValueError(
            f"{cur.path}: {key} is {value}; llama.cpp needs tensor data aligned to at least "
            f"{GGUF_DEFAULT_ALIGNMENT} bytes",
            hint=HINT_DAMAGED,
        )
    return value


def _tensor_table(cur: Cursor, n_tensors: int, alignment: int) -> list[TensorInfo]:
    """The tensor entries, held to llama.cpp's rules: unique names, each tensor's data right
    after the previous one's (padded to the alignment)."""
    tensors: list[TensorInfo] = []
    names: set[str] = set()
    expected = 0
    for _ in range(n_tensors):
        t = read_tensor_info(cur)
        if t.name in names:
            raise TensorInfoError(f"{cur.path}: tensor {t.name!r} appears twice", hint=HINT_DAMAGED)
        if t.offset != expected:
            raise TensorInfoError(
                f"{cur.path}: tensor {t.name!r} starts at data offset {t.offset:,}, but the "
                f"previous tensors end at {expected:,}",
                hint=HINT_DAMAGED,
            )
        names.add(t.name)
        tensors.append(t)
        expected += -(-t.n_bytes // alignment) * alignment
        if expected > cur.size:
            break  # the sizes already exceed the file: _check_complete reports it
    return tensors


def read_tensor_info(cur: Cursor) -> TensorInfo:
    at = cur.pos
    name = cur.string(limit=MAX_TENSOR_NAME, keep=False)
    n_dims = cur.take("<I")
    if n_dims > MAX_DIMS:
        raise TensorInfoError(
            f"{cur.path}: tensor {name!r} (byte {at}) has {n_dims} dimensions; GGML allows "
            f"at most {MAX_DIMS}",
            hint=HINT_DAMAGED,
        )
    shape = tuple(cur.take("<q") for _ in range(n_dims))
    n_elements = 1
    for d in shape:
        n_elements *= max(d, 1)
    if any(d < 0 for d in shape) or n_elements >= 2**63:
        raise TensorInfoError(
            f"{cur.path}: tensor {name!r} has an impossible shape {list(shape)}",
            hint=HINT_DAMAGED,
        )
    raw_type = cur.take("<I")
    try:
        ggml_type = GGMLQuantizationType(raw_type)
        block_size = GGML_QUANT_SIZES[ggml_type][0]
    except (ValueError, KeyError):
        raise UnsupportedModelError(
            f"{cur.path}: tensor {name} has unknown ggml type {raw_type}",
            hint="The file may need a newer llama.cpp, or it is damaged.",
        ) from None
    if shape and shape[0] % block_size:
        raise TensorInfoError(
            f"{cur.path}: tensor {name!r} has rows of {shape[0]} values, not a multiple of "
            f"{ggml_type.name}'s block of {block_size}",
            hint=HINT_DAMAGED,
        )
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


# Special tokens whose loss changes what a model generates (see MetadataReader.token_ids).
_SPECIAL_TOKEN_KEYS = (
    Keys.Tokenizer.BOS_ID,
    Keys.Tokenizer.EOS_ID,
    Keys.Tokenizer.EOT_ID,
    Keys.Tokenizer.EOM_ID,
)


def model_info(header: GGUFHeader) -> ModelInfo:
    """The model's shape from its header, every value type- and range-checked (gguf_values)."""
    r = MetadataReader(header.path, header.metadata, header.value_types)
    arch = r.string(Keys.General.ARCHITECTURE)
    r.check_finite(f"{arch}.")

    def key(template: str) -> str:
        return template.format(arch=arch)

    n_layers = r.integer(key(Keys.LLM.BLOCK_COUNT), 1, MAX_LAYERS)
    n_embd = r.integer(key(Keys.LLM.EMBEDDING_LENGTH), 1, MAX_WIDTH)
    n_head = r.per_layer(key(Keys.Attention.HEAD_COUNT), 1, MAX_HEADS, n_layers)
    head_dim = n_embd // n_head
    n_head_kv = r.per_layer(key(Keys.Attention.HEAD_COUNT_KV), 1, MAX_HEADS, n_layers, n_head)
    if head_dim == 0 and key(Keys.Attention.KEY_LENGTH) not in header.metadata:
        raise MetadataValueError(
            f"{header.path}: {n_head} attention heads cannot share a width of {n_embd}",
            hint="The file is damaged: download or convert it again.",
        )
    vocab_size = r.integer(key(Keys.LLM.VOCAB_SIZE), 1, MAX_VOCAB, token_count(r))
    r.token_ids(_SPECIAL_TOKEN_KEYS, vocab_size)
    check_vocab(r, header.vocab)
    names = {t.name for t in header.tensors}
    check_attention(r, arch, n_layers, names)
    head_dim_k = r.integer(key(Keys.Attention.KEY_LENGTH), 1, MAX_HEAD_DIM, head_dim)
    check_rope(r, arch, head_dim_k)
    counts: Counter[str] = Counter()
    sizes: Counter[str] = Counter()
    for t in header.tensors:
        counts[t.ggml_type.name] += 1
        sizes[t.ggml_type.name] += t.n_bytes
    return ModelInfo(
        path=header.path,
        architecture=arch,
        name=r.string(Keys.General.NAME, header.path.stem),
        block_count=n_layers,
        n_embd=n_embd,
        feed_forward_length=r.per_layer(
            key(Keys.LLM.FEED_FORWARD_LENGTH), 0, MAX_WIDTH, n_layers, 0
        ),
        n_head=n_head,
        n_head_kv=n_head_kv,
        head_dim_k=head_dim_k,
        head_dim_v=r.integer(key(Keys.Attention.VALUE_LENGTH), 1, MAX_HEAD_DIM, head_dim),
        context_length=r.integer(key(Keys.LLM.CONTEXT_LENGTH), 1, MAX_CONTEXT, 2048),
        sliding_window=r.integer(key(Keys.Attention.SLIDING_WINDOW), 0, MAX_CONTEXT, 0),
        vocab_size=vocab_size,
        file_type=file_type_name(r),
        file_size=header.file_size,
        tensor_bytes=sum(sizes.values()),
        n_params=sum(t.n_elements for t in header.tensors),
        types={k: (counts[k], sizes[k]) for k in sorted(counts, key=lambda k: -sizes[k])},
        has_chat_template=Keys.Tokenizer.CHAT_TEMPLATE in header.metadata,
        swa_layers=swa_layers(r, arch, n_layers),
        tensors=tuple(header.tensors),
    )


def load_model_info(path: str | Path) -> ModelInfo:
    return model_info(read_header(path))
