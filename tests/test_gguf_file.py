from __future__ import annotations

import struct
from pathlib import Path

import gguf
import pytest

from edgekit.errors import ModelNotFoundError, NotAGGUFError, TruncatedModelError
from edgekit.gguf_file import SkippedArray, load_model_info, read_header


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
    with pytest.raises(NotAGGUFError, match="corrupt"):
        read_header(bad)
