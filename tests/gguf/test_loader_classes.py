"""Header edits that made llama.cpp abort (issue 34, item 2) are refused by the header checks,
before anything loads: each class with several seeded instances, not only the cases the issue
names. The crash itself, where a check misses, is tests/backends/llama_cpp/test_trial_load.py."""

from __future__ import annotations

import random
import struct
import time
from pathlib import Path

import pytest
from gguf import GGUFValueType

from edgekit.errors import EdgekitError, HeaderLimitError, MetadataValueError
from edgekit.gguf.reader import MAX_KV, load_model_info
from tests.fixtures.fuzz_harness import load_seed
from tests.fixtures.mutators import (
    KV,
    assemble,
    encode_value,
    loader_class_edits,
    string_array,
    token_texts,
    with_kv,
    write_model,
)

CLASSES = ["alignment", "duplicate_token", "flipped_token", "tokenizer_model", "zero_kv_heads"]
CLASSES += ["rope_dims"]


def _edit(seed: Path, tmp_path: Path, name: str, case: int) -> Path:
    lay, header = load_seed(seed)
    data = seed.read_bytes()[len(header) :]
    edits = dict(loader_class_edits(lay, random.Random(case)))
    path = tmp_path / f"{name}-{case}.gguf"
    write_model(path, edits[name], data, lay.data_size)
    return path


@pytest.mark.parametrize("case", range(4))
@pytest.mark.parametrize("name", CLASSES)
def test_loader_abort_classes_are_refused_by_the_header_checks(
    tiny_model: Path, tmp_path: Path, name: str, case: int
) -> None:
    path = _edit(tiny_model, tmp_path, name, case)
    with pytest.raises(EdgekitError) as e:
        load_model_info(path)
    assert e.value.hint, "every refusal says what to do"


def test_a_flip_that_keeps_every_token_distinct_and_every_byte_is_accepted(
    tiny_model: Path, tmp_path: Path
) -> None:
    lay, header = load_seed(tiny_model)
    tokens = token_texts(lay)
    i = tokens.index("\u2581model".encode())
    tokens[i] = "\u2581modem".encode()  # still unique, not a byte token
    path = tmp_path / "renamed.gguf"
    write_model(
        path,
        with_kv(lay, "tokenizer.ggml.tokens", string_array(tokens)),
        tiny_model.read_bytes()[len(header) :],
        lay.data_size,
    )
    assert load_model_info(path).vocab_size == len(tokens)


@pytest.mark.parametrize(("n_rot", "ok"), [(16, True), (0, False), (3, False), (18, False)])
def test_rope_dimensions_must_be_even_and_fit_the_head(
    tiny_model: Path, tmp_path: Path, n_rot: int, ok: bool
) -> None:
    lay, header = load_seed(tiny_model)
    path = tmp_path / "rope.gguf"
    raw = encode_value(GGUFValueType.UINT32, n_rot)
    write_model(
        path,
        with_kv(lay, "{arch}.rope.dimension_count", raw),
        tiny_model.read_bytes()[len(header) :],
        lay.data_size,
    )
    if ok:
        assert load_model_info(path).head_dim_k == 16
    else:
        with pytest.raises(MetadataValueError, match=r"rope\.dimension_count"):
            load_model_info(path)


def test_absurd_key_counts_are_refused_at_once(tiny_model: Path, tmp_path: Path) -> None:
    """60,000 keys took 57 s inside llama-cpp-python's load; the reader caps the count."""
    lay, header = load_seed(tiny_model)
    junk = [
        KV(f"junk.{i}".encode(), encode_value(GGUFValueType.UINT8, 0), 0) for i in range(60_000)
    ]
    path = tmp_path / "keys.gguf"
    write_model(path, assemble(lay, [*lay.kvs, *junk]), tiny_model.read_bytes()[len(header) :],
                lay.data_size)  # fmt: skip
    start = time.perf_counter()
    with pytest.raises(HeaderLimitError, match=f"the limit is {MAX_KV:,}"):
        load_model_info(path)
    assert time.perf_counter() - start < 1.0


def test_absurd_array_lengths_are_refused(tiny_model: Path, tmp_path: Path) -> None:
    lay, header = load_seed(tiny_model)
    n = 5_000_000
    raw = struct.pack("<IIQ", GGUFValueType.ARRAY, GGUFValueType.UINT8, n) + bytes(n)
    path = tmp_path / "array.gguf"
    write_model(path, with_kv(lay, "junk.array", raw), tiny_model.read_bytes()[len(header) :],
                lay.data_size)  # fmt: skip
    with pytest.raises(HeaderLimitError, match="array elements"):
        load_model_info(path)


def test_a_bent_token_length_is_refused_without_copying_the_file(
    tiny_model: Path, tmp_path: Path
) -> None:
    """The reader keeps the token texts for the checks above, so a token length bent to most of
    a large file must be refused, not copied (344 MB peak on the default model before)."""
    lay, _ = load_seed(tiny_model)
    tokens = token_texts(lay)
    raw = bytearray(string_array(tokens))
    struct.pack_into("<Q", raw, 16, 200_000)  # the first token's length; the file has room
    path = tmp_path / "long-token.gguf"
    write_model(path, with_kv(lay, "tokenizer.ggml.tokens", bytes(raw)), bytes(300_000), 300_000)
    with pytest.raises(HeaderLimitError, match="token 0 is 200,000 bytes"):
        load_model_info(path)
