"""The one family table: what it says per model_type is what the converters do."""

from __future__ import annotations

import gguf
import pytest

from edgekit.converters.families import (
    EXPORTABLE,
    FAMILIES,
    NATIVE,
    gguf_arch_name,
    native_family,
)
from edgekit.errors import UnsupportedArchitectureError


@pytest.mark.parametrize("model_type", sorted(FAMILIES))
def test_every_row_names_a_llama_cpp_architecture_gguf_py_can_map(model_type: str) -> None:
    family = FAMILIES[model_type]
    assert gguf_arch_name(model_type) == family.name
    assert gguf.MODEL_TENSORS[family.arch]  # its tensor names are gguf-py's


def test_aliases_and_names_llama_cpp_knows_without_a_row() -> None:
    assert gguf_arch_name("mistral") == "llama"
    assert gguf_arch_name("gemma3_text") == "gemma3"
    assert gguf_arch_name("qwen3") == "qwen3"  # no row: llama.cpp's converter, its own name
    with pytest.raises(UnsupportedArchitectureError):
        gguf_arch_name("not-a-model")


def test_native_writer_takes_the_native_rows_only() -> None:
    assert set(NATIVE) == {"llama", "mistral", "qwen2", "gemma3", "gemma3_text"}
    for model_type in NATIVE:
        assert native_family(model_type) is FAMILIES[model_type]
    with pytest.raises(UnsupportedArchitectureError, match="phi3small"):
        native_family("phi3small")  # in the table, but llama.cpp's converter writes it


def test_onnx_export_takes_gemma3_as_its_text_only_model() -> None:
    assert "gemma3_text" in EXPORTABLE and "gemma3" not in EXPORTABLE
    assert set(EXPORTABLE) <= set(NATIVE)
