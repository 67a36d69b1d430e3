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


# --- issue 34, item 5: config.json values are checked like GGUF metadata -----------------------


def _config_with(d: Path, **values: object) -> Path:
    cfg = json.loads((d / "config.json").read_text())
    cfg.update(values)
    (d / "config.json").write_text(json.dumps(cfg))
    return d


REAL_VALUES = {
    "hidden_size": 64,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "num_hidden_layers": 2,
    "intermediate_size": 128,
    "vocab_size": 384,
    "head_dim": None,
    "rope_theta": 10000.0,
    "rms_norm_eps": 1e-6,
}


def test_real_hyperparameters_pass(tmp_path: Path) -> None:
    assert check_hf_dir(_config_with(hf_dir(tmp_path), **REAL_VALUES))


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("hidden_size", "64"),
        ("hidden_size", 0),
        ("num_attention_heads", 0),
        ("num_attention_heads", 4.0),
        ("num_key_value_heads", 3),  # 4 heads do not share 3 KV heads
        ("num_hidden_layers", -1),
        ("vocab_size", True),
        ("intermediate_size", [128]),
        ("max_position_embeddings", 10**30),
        ("rope_theta", "1e4"),
        ("rms_norm_eps", -1.0),
        ("rope_theta", float("inf")),
    ],
)
def test_impossible_hyperparameters_are_named(tmp_path: Path, key: str, value: object) -> None:
    d = _config_with(hf_dir(tmp_path), **{**REAL_VALUES, key: value})
    with pytest.raises(ConversionError, match=key):
        check_hf_dir(d)


@pytest.mark.parametrize("raw", [b"\xff\xfe{}", b"[1, 2]", b"[" * 100000])
def test_unreadable_config_json(tmp_path: Path, raw: bytes) -> None:
    d = hf_dir(tmp_path)
    (d / "config.json").write_bytes(raw)
    with pytest.raises(ConversionError, match="config"):
        check_hf_dir(d)
