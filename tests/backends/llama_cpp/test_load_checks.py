"""The llama.cpp runtime's own checks, past the header reader: a file the reader would refuse is
handed to the runtime directly (with the clean file's ModelInfo), as a reader bug would let it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from gguf import GGMLQuantizationType

from edgekit.backends.llama_cpp.runtime import LlamaCppRuntime
from edgekit.devices.profiles import load_profile
from edgekit.errors import (
    ContextCreationError,
    ModelLoadError,
    ModelSanityError,
    UnsupportedModelError,
)
from edgekit.gguf.metadata import add_metadata
from edgekit.gguf.reader import load_model_info, read_header


def _open(info_from: Path, file: Path) -> LlamaCppRuntime:
    info = replace(load_model_info(info_from), path=file)
    return LlamaCppRuntime(info, load_profile("cpu"), 128)


@pytest.mark.parametrize(
    ("kv", "needle"),
    [
        ({"tokenizer.ggml.bos_token_id": 2**31}, "BOS token"),  # llama.cpp swaps in a default
        ({"tokenizer.ggml.eos_token_id": 10**6}, "EOS token"),
        ({"llama.rope.freq_base": float("nan")}, "non-finite logits"),
    ],
)
def test_loaded_but_broken_model_is_refused(
    tiny_model: Path, tmp_path: Path, kv: dict[str, float], needle: str
) -> None:
    bad = tmp_path / "bad.gguf"
    add_metadata(tiny_model, bad, kv)
    with pytest.raises(ModelSanityError, match=needle):
        _open(tiny_model, bad)


def test_healthy_model_passes_and_starts_from_an_empty_cache(tiny_model: Path) -> None:
    from edgekit.backends.base import SamplingParams

    rt = _open(tiny_model, tiny_model)
    try:
        params = SamplingParams(max_tokens=6, temperature=0.0)
        first = rt.generate(rt.prompt_tokens("the city"), params).text
        again = rt.generate(rt.prompt_tokens("the city"), params).text
        assert first == again  # the check's token left nothing behind in the KV cache
    finally:
        rt.close()


def test_load_failure_of_a_known_architecture_is_a_load_error(
    tiny_model: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.gguf"
    add_metadata(tiny_model, bad, {"llama.attention.head_count_kv": 4})  # tensors hold 2
    with pytest.raises(ModelLoadError) as e:
        _open(tiny_model, bad)
    assert e.value.hint and "newer" not in e.value.hint


def test_unknown_architecture_keeps_the_newer_build_hint(tiny_model: Path, tmp_path: Path) -> None:
    data = bytearray(tiny_model.read_bytes())
    at = data.index(b"llama", 24)  # general.architecture's value
    data[at : at + 5] = b"llamx"
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(bytes(data))
    info = replace(load_model_info(tiny_model), path=bad, architecture="llamx")
    with pytest.raises(UnsupportedModelError) as e:
        LlamaCppRuntime(info, load_profile("cpu"), 128)
    assert e.value.hint and "newer" in e.value.hint
    assert read_header(bad).metadata["general.architecture"] == "llamx"


def test_a_context_llama_cpp_refuses_blames_the_setting_not_the_file(tiny_model: Path) -> None:
    # llama.cpp quantizes the V cache only with flash attention: the weights load, the context
    # cannot be made. (The profile schema refuses this pair; a replace() goes past it.)
    profile = replace(
        load_profile("cpu"), kv_cache_type=GGMLQuantizationType.Q4_0, flash_attn=False
    )
    with pytest.raises(ContextCreationError) as e:
        LlamaCppRuntime(load_model_info(tiny_model), profile, 256)
    assert e.value.hint and "--ctx" in e.value.hint and "again" not in e.value.hint
