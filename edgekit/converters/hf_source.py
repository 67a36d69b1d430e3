"""Checks on a Hugging Face model directory before anything heavy loads it.

Only safetensors weights are accepted (pickle checkpoints can run code when loaded), a tokenizer
must be present (the GGUF carries it), and the config must name a causal LM family edgekit knows.
Pure file checks: no torch here, so bad input fails fast with one clear error.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from edgekit.converters.families import gguf_arch_name
from edgekit.errors import ConversionError
from edgekit.hf_config import ConfigReader

_TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model")
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
_INTEGER_HPARAMS = (
    "hidden_size",
    "num_attention_heads",
    "num_key_value_heads",
    "num_hidden_layers",
    "intermediate_size",
    "vocab_size",
    "head_dim",
    "max_position_embeddings",
)


def check_hf_dir(source: Path) -> dict[str, Any]:
    """The parsed config.json of a convertible directory, or a ConversionError saying why not."""
    if not source.exists():
        raise ConversionError(f"model not found: {source}", hint="Check the path.")
    if not source.is_dir():
        raise ConversionError(
            f"{source} is neither a GGUF file nor a Hugging Face model directory",
            hint="Pass a .gguf file or a folder with config.json and *.safetensors.",
        )
    weights = sorted(source.glob("*.safetensors"))
    if not weights:
        pickles = [p.name for p in source.iterdir() if p.suffix in _PICKLE_SUFFIXES]
        raise ConversionError(
            f"no *.safetensors weights in {source}"
            + (f" (found pickle checkpoints: {', '.join(pickles)})" if pickles else ""),
            hint="edgekit never loads pickle checkpoints; save the model with "
            "save_pretrained(..., safe_serialization=True).",
        )
    cfg = _config(source)
    model_type = cfg.get("model_type")
    archs = cfg.get("architectures") or []
    if not model_type or not any(str(a).endswith("ForCausalLM") for a in archs):
        raise ConversionError(
            f"{source} does not hold a causal language model "
            f"(model_type={model_type!r}, architectures={archs})",
            hint="edgekit converts decoder-only language models (…ForCausalLM).",
        )
    gguf_arch_name(str(model_type))  # one that llama.cpp has no graph for fails here, early
    check_hparams(cfg, source / "config.json")
    if not any((source / f).exists() for f in _TOKENIZER_FILES):
        raise ConversionError(
            f"no tokenizer in {source} (expected {' or '.join(_TOKENIZER_FILES)})",
            hint="Save the tokenizer beside the model: tokenizer.save_pretrained(folder).",
        )
    return cfg


def _config(source: Path) -> dict[str, Any]:
    path = source / "config.json"
    if not path.exists():
        raise ConversionError(
            f"{source} has safetensors but no config.json: not a Hugging Face model directory",
            hint="edgekit converts language models saved with save_pretrained().",
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as e:  # unreadable, not UTF-8, not JSON
        raise ConversionError(f"{path} is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise ConversionError(f"{path} is not a model config")
    return data


def check_hparams(cfg: dict[str, Any], path: Path) -> None:
    """The values the converter and llama.cpp's graph use, typed and in range where config.json
    gives them (save_pretrained leaves out values equal to the class defaults, which transformers
    fills in later): a string or zero heads would otherwise end in a traceback minutes later."""
    r = ConfigReader(cfg, path, ConversionError)
    given = {key: r.integer(key) for key in _INTEGER_HPARAMS if cfg.get(key) is not None}
    n_head, n_head_kv = given.get("num_attention_heads"), given.get("num_key_value_heads")
    if n_head and n_head_kv and n_head % n_head_kv:
        raise ConversionError(
            f"{path}: num_attention_heads ({n_head}) is not a multiple of "
            f"num_key_value_heads ({n_head_kv})",
            hint="The model's config.json is damaged: fix the value or download it again.",
        )
    for key in ("rms_norm_eps", "rope_theta"):
        _positive_number(cfg, key, path)


def _positive_number(cfg: dict[str, Any], key: str, path: Path) -> None:
    value = cfg.get(key)
    if value is None:
        return
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value <= 0:
        raise ConversionError(
            f"{path}: {key} must be a positive number, not {value!r:.40}",
            hint="The model's config.json is damaged: fix the value or download it again.",
        )
