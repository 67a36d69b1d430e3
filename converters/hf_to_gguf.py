"""HF safetensors -> base GGUF. Not built yet: the directory is validated, then a clear error.

The intended route is gguf-py's TensorNameMap plus its vocab classes (no hand-written name table),
with llama.cpp's Q/K permutation for llama/mistral and Gemma's +1 on norm weights.
"""

from __future__ import annotations

from pathlib import Path

from edgekit.converters.hf_source import check_hf_dir
from edgekit.errors import ConversionError


def convert_hf(source: Path, out: Path) -> Path:
    cfg = check_hf_dir(source)  # bad input gets its specific error first
    raise ConversionError(
        f"converting a Hugging Face {cfg.get('model_type')} checkpoint to GGUF is not built yet",
        hint="Convert it with llama.cpp's convert_hf_to_gguf.py (--outtype f16), then run "
        "`edgekit convert model-f16.gguf`; calibration still reads the HF folder via --scores.",
    )
