"""Seeded mutators of GGUF headers and device profiles, for the readers' fuzz test and benchmark.

They aim where a damaged download or a hostile edit does harm: counts and lengths set to values at
the edges (0, 2^31, 2^32-1, 2^63, ...), metadata values retyped (a string, NaN, inf, a negative or
huge number, nested arrays) for the keys edgekit reads, tensor entries bent, bytes flipped, the file
cut. The GGUF layout is walked here independently of edgekit's reader (it is what is under test).
A mutant is the header bytes plus the size of the data section after it, which the writer leaves
as a sparse hole: the readers never read tensor data, and a 250 MB model costs no disk per mutant.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from gguf import GGUFValueType

from edgekit.gguf_file import SCALAR_FORMATS

EDGE_U64 = [0, 1, 2, 63, 64, 65, 255, 2**16, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**40, 2**63 - 1]
EDGE_U64 += [2**63, 2**64 - 1]
EDGE_U32 = [0, 1, 2, 3, 4, 5, 7, 8, 12, 13, 99, 2**16, 2**31 - 1, 2**31, 2**32 - 1]
EDGE_FLOATS = [float("nan"), float("inf"), float("-inf"), -1.0, 0.0, 1e300, -1e-300, 0.5]
# Keys edgekit reads ({arch} is filled in), which the retyping mutator aims at most of the time.
TARGET_KEYS = [
    "general.alignment",
    "general.architecture",
    "general.name",
    "general.file_type",
    "{arch}.block_count",
    "{arch}.embedding_length",
    "{arch}.feed_forward_length",
    "{arch}.context_length",
    "{arch}.vocab_size",
    "{arch}.attention.head_count",
    "{arch}.attention.head_count_kv",
    "{arch}.attention.key_length",
    "{arch}.attention.value_length",
    "{arch}.attention.sliding_window",
    "{arch}.attention.sliding_window_pattern",
    "{arch}.rope.freq_base",
    "tokenizer.ggml.tokens",
    "tokenizer.ggml.bos_token_id",
    "tokenizer.ggml.eos_token_id",
]


def _string(s: bytes) -> bytes:
    return struct.pack("<Q", len(s)) + s


@dataclass
class KV:
    key: bytes
    raw_value: bytes  # type tag and value, as in the file
    start: int  # absolute offsets of interesting fields inside the header
    fields: list[tuple[int, str]] = field(default_factory=list)  # (offset, struct format)


@dataclass
class Layout:
    """Where each field of a GGUF header sits: what the mutators aim at."""

    head: bytes  # magic + version
    kvs: list[KV]
    tensor_table: bytes
    tensor_fields: list[tuple[int, str]]  # offsets relative to the start of the tensor table
    data_size: int
    alignment: int
    arch: str
    n_tensors: int
    table_start: int  # absolute offset of the tensor table in the original header


class _Walker:
    def __init__(self, buf: bytes) -> None:
        self.buf, self.pos = buf, 0

    def take(self, fmt: str) -> int:
        (v,) = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += struct.calcsize(fmt)
        return int(v) if not isinstance(v, float) else v  # type: ignore[return-value]

    def value(self, vtype: int, fields: list[tuple[int, str]]) -> object:
        if vtype == GGUFValueType.STRING:
            fields.append((self.pos, "<Q"))
            n = self.take("<Q")
            s = self.buf[self.pos : self.pos + n]
            self.pos += n
            return s.decode("utf-8", "replace")
        if vtype == GGUFValueType.ARRAY:
            fields.append((self.pos, "<I"))
            item = self.take("<I")
            fields.append((self.pos, "<Q"))
            n = self.take("<Q")
            for _ in range(n):
                self.value(item, fields if len(fields) < 64 else [])
            return None
        fmt = SCALAR_FORMATS[GGUFValueType(vtype)]
        fields.append((self.pos, fmt))
        return self.take(fmt)


def parse_layout(data: bytes, file_size: int | None = None) -> Layout:
    """Walk a VALID GGUF file's header (the seed of the mutants); `data` may stop at the data
    section, with the whole file's size in `file_size`."""
    w = _Walker(data)
    w.pos = 8
    n_tensors, n_kv = w.take("<Q"), w.take("<Q")
    kvs, arch, alignment = [], "llama", 32
    for _ in range(n_kv):
        start = w.pos
        key = data[start + 8 : start + 8 + struct.unpack_from("<Q", data, start)[0]]
        w.pos = start + 8 + len(key)
        value_start = w.pos
        fields: list[tuple[int, str]] = [(start, "<Q"), (w.pos, "<I")]
        value = w.value(w.take("<I"), fields)
        kvs.append(KV(key, data[value_start : w.pos], start, fields))
        if key == b"general.architecture" and isinstance(value, str):
            arch = value
        if key == b"general.alignment" and isinstance(value, int):
            alignment = value
    table_start = w.pos
    tensor_fields: list[tuple[int, str]] = []
    for _ in range(n_tensors):
        tensor_fields.append((w.pos - table_start, "<Q"))
        w.pos += 8 + struct.unpack_from("<Q", data, w.pos)[0]
        tensor_fields.append((w.pos - table_start, "<I"))
        n_dims = w.take("<I")
        for _ in range(n_dims):
            tensor_fields.append((w.pos - table_start, "<Q"))
            w.pos += 8
        tensor_fields += [(w.pos - table_start, "<I"), (w.pos + 4 - table_start, "<Q")]
        w.pos += 12
    table = data[table_start : w.pos]
    data_size = (file_size or len(data)) - (-(-w.pos // alignment) * alignment)
    return Layout(
        data[:8], kvs, table, tensor_fields, data_size, alignment, arch, n_tensors, table_start
    )


def assemble(layout: Layout, kvs: list[KV], table: bytes | None = None) -> bytes:
    """Header bytes for these KV pairs and tensor table, padded to the alignment."""
    t = layout.tensor_table if table is None else table
    counts = struct.pack("<QQ", layout.n_tensors, len(kvs))
    header = layout.head + counts + b"".join(_string(kv.key) + kv.raw_value for kv in kvs) + t
    return header + b"\0" * (-len(header) % layout.alignment)


def encode_value(vtype: GGUFValueType, value: object) -> bytes:
    tag = struct.pack("<I", vtype)
    if vtype == GGUFValueType.STRING:
        assert isinstance(value, bytes)
        return tag + _string(value)
    return tag + struct.pack(SCALAR_FORMATS[vtype], value)


def _interesting_value(rng: random.Random) -> bytes:
    choice = rng.randrange(9)
    if choice == 0:
        return encode_value(GGUFValueType.STRING, rng.choice([b"", b"12", b"nan", b"x" * 300]))
    if choice == 1:
        return encode_value(GGUFValueType.FLOAT32, rng.choice([*EDGE_FLOATS[:5], 0.5, 2.0]))
    if choice == 2:
        return encode_value(GGUFValueType.FLOAT64, rng.choice(EDGE_FLOATS))
    if choice == 3:
        return encode_value(GGUFValueType.INT32, rng.choice([-1, -5, -(2**31), 0, 2**31 - 1]))
    if choice == 4:
        return encode_value(GGUFValueType.INT64, rng.choice([-1, -(2**63), 2**40, 2**63 - 1]))
    if choice == 5:
        return encode_value(GGUFValueType.UINT64, rng.choice(EDGE_U64))
    if choice == 6:
        return encode_value(GGUFValueType.BOOL, rng.choice([True, False]))
    if choice == 7:
        return nested_array(rng.choice([1, 2, 3, 65, 400, 2000]), rng.randrange(0, 3))
    n = rng.choice([0, 1, 2, 64, 65, 200])
    items = b"".join(struct.pack("<i", rng.choice([-1, 0, 1, 7, 2**31 - 1])) for _ in range(n))
    return struct.pack("<IIQ", GGUFValueType.ARRAY, GGUFValueType.INT32, n) + items


def nested_array(depth: int, width: int) -> bytes:
    """An array of arrays `depth` deep; at depth 1 with many children when width > 0."""
    inner = struct.pack("<IQ", GGUFValueType.UINT8, 0)
    for _ in range(depth):
        n = 70 if width and depth == 1 else 1
        inner = struct.pack("<IQ", GGUFValueType.ARRAY, n) + inner * n
    return struct.pack("<I", GGUFValueType.ARRAY) + inner


Mutator = Callable[[Layout, bytes, random.Random], tuple[bytes, int]]


def flip_bits(lay: Layout, header: bytes, rng: random.Random) -> tuple[bytes, int]:
    b = bytearray(header)
    for _ in range(rng.randint(1, 8)):
        i = rng.randrange(len(b))
        b[i] ^= 1 << rng.randrange(8)
    return bytes(b), lay.data_size


def set_field(lay: Layout, header: bytes, rng: random.Random) -> tuple[bytes, int]:
    """A count, length, type tag or scalar set to an edge value."""
    fields = [(8, "<Q"), (16, "<Q")] + [f for kv in lay.kvs for f in kv.fields]
    fields += [(lay.table_start + off, fmt) for off, fmt in lay.tensor_fields]
    off, fmt = rng.choice(fields)
    b = bytearray(header)
    if fmt in ("<Q", "<q"):
        struct.pack_into("<Q", b, off, rng.choice(EDGE_U64))
    elif fmt in ("<I", "<i"):
        struct.pack_into("<I", b, off, rng.choice(EDGE_U32))
    elif fmt == "<f":
        struct.pack_into(fmt, b, off, rng.choice([*EDGE_FLOATS[:5], 3.4e38, 0.5]))
    elif fmt == "<d":
        struct.pack_into(fmt, b, off, rng.choice(EDGE_FLOATS))
    else:
        b[off] = rng.randrange(256)
    return bytes(b), lay.data_size


def retype_kv(lay: Layout, header: bytes, rng: random.Random) -> tuple[bytes, int]:
    """A key edgekit reads, given an impossible value of some type."""
    targets = [k.format(arch=lay.arch).encode() for k in TARGET_KEYS]
    key = rng.choice(targets)
    kvs = [kv for kv in lay.kvs if kv.key != key]
    kvs.insert(rng.randrange(len(kvs) + 1), KV(key, _interesting_value(rng), 0))
    return assemble(lay, kvs), lay.data_size


def drop_or_repeat_kv(lay: Layout, header: bytes, rng: random.Random) -> tuple[bytes, int]:
    kvs = list(lay.kvs)
    i = rng.randrange(len(kvs))
    if rng.random() < 0.5:
        del kvs[i]
    else:
        kvs.insert(rng.randrange(len(kvs) + 1), kvs[i])
    return assemble(lay, kvs), lay.data_size


def truncate(lay: Layout, header: bytes, rng: random.Random) -> tuple[bytes, int]:
    if rng.random() < 0.5:
        return header[: rng.randrange(len(header))], 0
    return header, rng.randrange(lay.data_size + 1)


def splice(lay: Layout, header: bytes, rng: random.Random) -> tuple[bytes, int]:
    """A run of the header copied over another place (a torn write, a bad sector)."""
    b = bytearray(header)
    n = rng.randint(1, 64)
    src, dst = rng.randrange(len(b) - n), rng.randrange(len(b) - n)
    b[dst : dst + n] = b[src : src + n] if rng.random() < 0.7 else b"\0" * n
    return bytes(b), lay.data_size


GGUF_MUTATORS: dict[str, Mutator] = {
    "flip_bits": flip_bits,
    "set_field": set_field,
    "retype_kv": retype_kv,
    "drop_or_repeat_kv": drop_or_repeat_kv,
    "truncate": truncate,
    "splice": splice,
}
_WEIGHTS = {"flip_bits": 2, "set_field": 4, "retype_kv": 5, "drop_or_repeat_kv": 1}
_WEIGHTS |= {"truncate": 1, "splice": 1}


def gguf_mutant(lay: Layout, header: bytes, rng: random.Random) -> tuple[str, bytes, int]:
    """One mutant of the ORIGINAL header bytes (the mutators' offsets point into it)."""
    names = list(GGUF_MUTATORS)
    name = rng.choices(names, weights=[_WEIGHTS[n] for n in names])[0]
    data, data_size = GGUF_MUTATORS[name](lay, header, rng)
    if rng.random() < 0.15:  # stack a second mutation now and then
        data, _ = flip_bits(lay, data, rng) if data else (data, 0)
    return name, data, data_size


def write_mutant(path: Path, header: bytes, data_size: int) -> None:
    """The header, then a sparse hole where the tensor data was."""
    with path.open("wb") as f:
        f.write(header)
        f.truncate(len(header) + data_size)


# --- device profiles ------------------------------------------------------------------------

PROFILE_VALUES = [
    "true",
    '"false"',
    "0",
    "-1",
    "-7",
    "2.5",
    "7.5",
    "1e400",
    "nan",
    "inf",
    '"auto"',
    '""',
    '"Q4_K"',
    '"q8_0"',
    "[]",
    '["CPUExecutionProvider"]',
    '"CPUExecutionProvider"',
    "{}",
    "[1, 2]",
    '["host:1"]',
    '["nohost"]',
    "9999999999999999999",
    "2024-01-01",
]


def profile_mutant(text: str, rng: random.Random) -> tuple[str, bytes]:
    """A mutated profile: retyped values, misspelt keys, bad bytes, deep nesting, cut text."""
    lines = text.splitlines()
    kind = rng.choice(["value", "value", "key", "bytes", "nest", "cut", "table", "junk"])
    if kind == "value" or kind == "key":
        idx = [i for i, line in enumerate(lines) if "=" in line and not line.startswith("#")]
        i = rng.choice(idx)
        key, _, value = lines[i].partition("=")
        if kind == "value":
            lines[i] = f"{key}= {rng.choice(PROFILE_VALUES)}"
        else:
            k = key.strip()
            j = rng.randrange(len(k))
            lines[i] = f"{k[:j] + k[j + 1 :] or 'x'} ={value}"
        return kind, "\n".join(lines).encode()
    if kind == "table":
        idx = [i for i, line in enumerate(lines) if line.startswith("[")]
        i = rng.choice(idx)
        lines[i] = rng.choice(["[runtme]", "[[runtime]]", "runtime = 5", 'memory = "x"', "[x.y]"])
        return kind, "\n".join(lines).encode()
    data = bytearray("\n".join(lines).encode())
    if kind == "bytes":
        for _ in range(rng.randint(1, 6)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        return kind, bytes(data)
    if kind == "nest":
        depth = rng.choice([10, 300, 1000, 5000])
        opener, closer = rng.choice([("[", "]"), ("{a=", "}")])
        return kind, bytes(data) + f"\nx = {opener * depth}{closer * depth}\n".encode()
    if kind == "cut":
        return kind, bytes(data[: rng.randrange(len(data))])
    junk = rng.choice([b"\xff\xfe", b"\x00" * 10, b"=" * 100, b"[" * 3, "é".encode("latin-1")])
    at = rng.randrange(len(data))
    return kind, bytes(data[:at]) + junk + bytes(data[at:])
