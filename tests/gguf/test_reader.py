from __future__ import annotations

import os
import struct
import time
from pathlib import Path

import gguf
import pytest
from gguf import GGUFValueType

from edgekit.errors import (
    CorruptModelError,
    HeaderLimitError,
    MetadataTypeError,
    MetadataValueError,
    ModelFileError,
    ModelNotFoundError,
    NotAGGUFError,
    TensorInfoError,
    TruncatedModelError,
)
from edgekit.gguf.reader import SkippedArray, load_model_info, read_header
from tests.fixtures.mutators import (
    KV,
    assemble,
    encode_value,
    nested_array,
    parse_layout,
    write_mutant,
)


def test_reads_what_gguf_py_wrote(tiny_model: Path) -> None:
    info = load_model_info(tiny_model)
    assert (info.architecture, info.block_count, info.n_embd, info.n_head) == ("llama", 2, 64, 4)
    assert info.n_head_kv == 2 and info.head_dim_k == 16 and info.feed_forward_length == 128
    assert info.vocab_size == len(gguf.GGUFReader(tiny_model).fields["tokenizer.ggml.tokens"].data)
    assert info.types == {"F32": (21, info.tensor_bytes)}
    assert info.bits_per_weight == pytest.approx(32.0)
    assert info.swa_layers == frozenset()


def test_tensor_table_matches_gguf_py(tiny_q8_model: Path) -> None:
    ours = read_header(tiny_q8_model)
    theirs = gguf.GGUFReader(tiny_q8_model)
    assert ours.data_offset == theirs.data_offset
    for mine, ref in zip(ours.tensors, theirs.tensors, strict=True):
        assert mine.name == ref.name
        assert mine.ggml_type == ref.tensor_type
        assert mine.n_bytes == ref.n_bytes
        assert mine.offset == ref.data_offset - theirs.data_offset


def test_long_arrays_are_skipped_not_kept(tiny_model: Path) -> None:
    tokens = read_header(tiny_model).metadata["tokenizer.ggml.tokens"]
    assert isinstance(tokens, SkippedArray) and tokens.item_type == gguf.GGUFValueType.STRING


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError):
        read_header(tmp_path / "nope.gguf")


def test_not_a_gguf(tmp_path: Path) -> None:
    path = tmp_path / "model.gguf"
    path.write_bytes(b"PK\x03\x04" + b"\0" * 100)
    with pytest.raises(NotAGGUFError, match="not a GGUF"):
        read_header(path)


def test_directory_is_not_a_gguf(tmp_path: Path) -> None:
    with pytest.raises(NotAGGUFError):
        read_header(tmp_path)


@pytest.mark.parametrize("keep", [0.05, 0.5, 0.99])
def test_truncated_file_is_detected(tiny_model: Path, tmp_path: Path, keep: float) -> None:
    data = tiny_model.read_bytes()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(TruncatedModelError):
        read_header(cut)


def test_corrupt_value_type_is_reported(tiny_model: Path, tmp_path: Path) -> None:
    data = bytearray(tiny_model.read_bytes())
    # The first KV's value type sits after magic, version, counts and the key string.
    key_len = struct.unpack_from("<Q", data, 24)[0]
    struct.pack_into("<I", data, 32 + key_len, 99)
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(bytes(data))
    with pytest.raises(CorruptModelError, match="corrupt"):
        read_header(bad)


# --- issue 14, finding 2: the header reader on damaged and hostile files ---------------------


def _with_value(model: Path, tmp_path: Path, key: str, raw_value: bytes) -> Path:
    """`model` with `key` (re)set to a raw GGUF value (type tag + bytes); data left as a hole."""
    head = model.read_bytes()
    lay = parse_layout(head)
    kvs = [kv for kv in lay.kvs if kv.key != key.encode()]
    kvs.append(KV(key.encode(), raw_value, 0))
    out = tmp_path / "edited.gguf"
    write_mutant(out, assemble(lay, kvs), lay.data_size)
    return out


def _read_info_bounded(path: Path) -> None:
    """Read a header + model info, failing the test if it takes over 2 s."""
    start = time.perf_counter()
    try:
        load_model_info(path)
    finally:
        assert time.perf_counter() - start < 2.0


U32, I32, I64, U64 = (
    GGUFValueType.UINT32,
    GGUFValueType.INT32,
    GGUFValueType.INT64,
    GGUFValueType.UINT64,
)
F32, F64, STR = GGUFValueType.FLOAT32, GGUFValueType.FLOAT64, GGUFValueType.STRING


@pytest.mark.parametrize(
    ("key", "raw", "error"),
    [
        # block_count huge: the KV estimate and the SWA layout looped over every "layer"
        ("llama.block_count", encode_value(U32, 2**32 - 1), MetadataValueError),
        ("llama.block_count", encode_value(I64, 2**40), MetadataValueError),
        ("llama.block_count", encode_value(F64, 1e300), MetadataTypeError),
        ("llama.block_count", encode_value(STR, b"12"), MetadataTypeError),
        ("llama.embedding_length", encode_value(F32, float("nan")), MetadataValueError),
        ("llama.context_length", encode_value(F64, float("inf")), MetadataValueError),
        ("llama.context_length", encode_value(F32, 512.0), MetadataTypeError),
        ("llama.rope.freq_base", encode_value(F32, float("nan")), MetadataValueError),
        ("llama.attention.head_count", nested_array(1, 0), MetadataTypeError),
        # negative widths gave negative estimates that always "fit"
        ("llama.embedding_length", encode_value(I32, -64), MetadataValueError),
        ("llama.attention.head_count_kv", encode_value(I32, -2), MetadataValueError),
        ("llama.vocab_size", encode_value(I64, -5), MetadataValueError),
        ("llama.attention.head_count", encode_value(U32, 0), MetadataValueError),
        ("llama.context_length", encode_value(U32, 0), MetadataValueError),
        ("general.alignment", encode_value(U32, 0), MetadataValueError),
        ("general.alignment", encode_value(U32, 48), MetadataValueError),
        ("general.alignment", encode_value(STR, b"32"), MetadataTypeError),
        ("general.alignment", encode_value(F32, float("nan")), MetadataTypeError),
        ("general.file_type", encode_value(STR, b"Q4_K_M"), MetadataTypeError),
        ("general.architecture", encode_value(U32, 7), MetadataTypeError),
        ("tokenizer.ggml.bos_token_id", encode_value(U32, 2**31), MetadataValueError),
        ("tokenizer.ggml.tokens", encode_value(U32, 3), MetadataTypeError),
        ("general.nested", nested_array(400, 0), MetadataTypeError),  # was a RecursionError
        ("general.nested", nested_array(1, 1), MetadataTypeError),  # 70 arrays: was a KeyError
    ],
)
def test_impossible_metadata_is_refused_by_kind(
    tiny_model: Path, tmp_path: Path, key: str, raw: bytes, error: type[Exception]
) -> None:
    bad = _with_value(tiny_model, tmp_path, key, raw)
    with pytest.raises(error, match=key.split(".")[-1] if "nested" not in key else "array"):
        _read_info_bounded(bad)


def test_huge_tensor_count_on_a_zero_tail_stops_at_once(tiny_model: Path, tmp_path: Path) -> None:
    # The reader used to build one TensorInfo per 24 zero bytes before noticing the truncation.
    data = bytearray(tiny_model.read_bytes()[:24] + b"\0" * (64 * 2**20))
    struct.pack_into("<QQ", data, 8, 2**63, 0)
    bad = tmp_path / "zeros.gguf"
    bad.write_bytes(bytes(data))
    start = time.perf_counter()
    with pytest.raises(HeaderLimitError, match="tensors"):
        read_header(bad)
    assert time.perf_counter() - start < 1.0


@pytest.mark.parametrize("n", [2**32, 2**40, 2**64 - 1])
def test_huge_counts_are_checked_against_the_file(tiny_model: Path, tmp_path: Path, n: int) -> None:
    data = bytearray(tiny_model.read_bytes())
    struct.pack_into("<Q", data, 16, n)  # n_kv
    bad = tmp_path / "kv.gguf"
    bad.write_bytes(bytes(data))
    with pytest.raises(HeaderLimitError, match="metadata keys"):
        read_header(bad)


def test_tensor_table_follows_llama_cpp_rules(tiny_model: Path, tmp_path: Path) -> None:
    lay = parse_layout(tiny_model.read_bytes())
    table = bytearray(lay.tensor_table)
    # The first tensor's n_dims (after its name) set to 9: GGML has at most 4 dimensions.
    name_len = struct.unpack_from("<Q", table, 0)[0]
    struct.pack_into("<I", table, 8 + name_len, 9)
    bad = tmp_path / "dims.gguf"
    write_mutant(bad, assemble(lay, lay.kvs, bytes(table)), lay.data_size)
    with pytest.raises(TensorInfoError, match="dimensions"):
        read_header(bad)


def test_duplicate_keys_are_corrupt(tiny_model: Path, tmp_path: Path) -> None:
    lay = parse_layout(tiny_model.read_bytes())
    bad = tmp_path / "dup.gguf"
    write_mutant(bad, assemble(lay, [*lay.kvs, lay.kvs[0]]), lay.data_size)
    with pytest.raises(CorruptModelError, match="second time"):
        read_header(bad)


def test_every_file_error_is_a_model_file_error() -> None:
    for cls in (HeaderLimitError, MetadataTypeError, MetadataValueError, TensorInfoError):
        assert issubclass(cls, CorruptModelError) and issubclass(cls, ModelFileError)


def test_unreadable_file_is_a_model_file_error(tiny_model: Path, tmp_path: Path) -> None:
    locked = tmp_path / "locked.gguf"
    locked.write_bytes(tiny_model.read_bytes())
    locked.chmod(0)
    try:
        if os.access(locked, os.R_OK):
            pytest.skip("running as a user that reads any file (root)")
        with pytest.raises(ModelFileError, match="cannot read"):
            read_header(locked)
    finally:
        locked.chmod(0o600)
