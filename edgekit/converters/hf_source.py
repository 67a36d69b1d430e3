"""Checks on a Hugging Face model directory before anything heavy loads it.

Only safetensors weights are accepted (pickle checkpoints can run code when loaded), a tokenizer
must be present (the GGUF carries it), and the config must name a causal LM family edgekit knows.
Pure file checks: no torch here, so bad input fails fast with one clear error.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgekit.converters.families import gguf_arch_name
from edgekit.errors import ConversionError

_TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model")
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


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
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConversionError(f"{path} is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise ConversionError(f"{path} is not a model config")
    return data
