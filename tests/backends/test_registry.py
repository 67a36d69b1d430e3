"""The registry hands each model to the back end that reads it, by what the file is."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgekit.backends import Capability, backend_for, get_backend, registry
from edgekit.errors import ModelNotFoundError, RuntimeBackendError, UnsupportedModelError


def _onnx_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "m-onnx"
    folder.mkdir()
    (folder / "model.onnx").write_bytes(b"\x08\x07")
    (folder / "config.json").write_text(json.dumps({"num_hidden_layers": 1}))
    return folder


def test_builtin_backends_are_registered_by_name() -> None:
    assert {"llama_cpp", "onnx"} <= set(registry())
    assert get_backend("llama_cpp").name == "llama_cpp"
    with pytest.raises(RuntimeBackendError, match="no back end named"):
        get_backend("nope")


def test_a_gguf_goes_to_llama_cpp_by_its_magic(tiny_model: Path, tmp_path: Path) -> None:
    renamed = tmp_path / "model.bin"  # the name does not matter, the magic does
    renamed.write_bytes(tiny_model.read_bytes())
    assert backend_for(renamed).name == "llama_cpp"


def test_an_onnx_folder_goes_to_onnx(tmp_path: Path) -> None:
    assert backend_for(_onnx_folder(tmp_path)).name == "onnx"


def test_a_capability_the_reader_lacks_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedModelError, match="cannot score"):
        backend_for(_onnx_folder(tmp_path), Capability.SCORE)


def test_a_missing_model_gets_the_gguf_readers_error(tmp_path: Path) -> None:
    backend = backend_for(tmp_path / "missing.gguf")
    with pytest.raises(ModelNotFoundError):
        backend.plan(tmp_path / "missing.gguf", "cpu", None)
