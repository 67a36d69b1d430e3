"""Bad Hugging Face inputs fail fast with one clear error, before torch loads anything."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgekit.converters.hf_source import check_hf_dir
from edgekit.errors import ConversionError, UnsupportedArchitectureError


def hf_dir(
    tmp_path: Path,
    model_type: str = "llama",
    arch: str = "LlamaForCausalLM",
    tokenizer: bool = True,
    weights: str = "model.safetensors",
) -> Path:
    d = tmp_path / "hf"
    d.mkdir()
    cfg = {"model_type": model_type, "architectures": [arch]}
    (d / "config.json").write_text(json.dumps(cfg))
    (d / weights).write_bytes(b"\0" * 16)
    if tokenizer:
        (d / "tokenizer.json").write_text("{}")
    return d


def test_a_good_directory_passes(tmp_path: Path) -> None:
    assert check_hf_dir(hf_dir(tmp_path))["model_type"] == "llama"


def test_unknown_architecture(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedArchitectureError, match="wombat"):
        check_hf_dir(hf_dir(tmp_path, model_type="wombat", arch="WombatForCausalLM"))


def test_an_architecture_llama_cpp_knows_passes_the_checks(tmp_path: Path) -> None:
    """falcon has no native mapping, but llama.cpp's converter handles it."""
    assert check_hf_dir(hf_dir(tmp_path, model_type="falcon", arch="FalconForCausalLM"))


def test_missing_tokenizer(tmp_path: Path) -> None:
    with pytest.raises(ConversionError, match="no tokenizer"):
        check_hf_dir(hf_dir(tmp_path, tokenizer=False))


def test_non_llm_safetensors(tmp_path: Path) -> None:
    with pytest.raises(ConversionError, match="causal language model"):
        check_hf_dir(hf_dir(tmp_path, model_type="vit", arch="ViTForImageClassification"))


def test_safetensors_without_config(tmp_path: Path) -> None:
    d = hf_dir(tmp_path)
    (d / "config.json").unlink()
    with pytest.raises(ConversionError, match=r"no config\.json"):
        check_hf_dir(d)


def test_pickle_checkpoints_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConversionError, match="pickle"):
        check_hf_dir(hf_dir(tmp_path, weights="pytorch_model.bin"))


def test_missing_source(tmp_path: Path) -> None:
    with pytest.raises(ConversionError, match="not found"):
        check_hf_dir(tmp_path / "nope")
