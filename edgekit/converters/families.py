"""The one table of model architectures edgekit knows, read by the converters and calibration.

llama.cpp's convert_hf_to_gguf.py converts every architecture it registers; edgekit's own
converter (converters/hf_arch.py) handles a few families natively. Calibration needs, for any of
them, the llama.cpp architecture name under which gguf-py maps Hugging Face module names to GGUF
tensor names: usually transformers' `model_type` itself, with the aliases below.
"""

from __future__ import annotations

from edgekit.errors import UnsupportedArchitectureError

# transformers model_type -> llama.cpp architecture, where the names differ.
GGUF_ARCH_ALIASES = {
    "mistral": "llama",  # llama.cpp runs Mistral's dense models as llama
    "gemma3_text": "gemma3",
    "phi3small": "phi3",
}

# Families edgekit's own HF -> GGUF writer maps by hand (converters/hf_arch.FAMILIES); the rest
# go through llama.cpp's converter.
NATIVE_FAMILIES = ("llama", "mistral", "qwen2", "gemma3", "gemma3_text")


def gguf_arch_name(model_type: str) -> str:
    """The llama.cpp architecture name of a transformers model_type."""
    import gguf

    name = GGUF_ARCH_ALIASES.get(model_type, model_type)
    if name not in gguf.MODEL_ARCH_NAMES.values():
        raise UnsupportedArchitectureError(
            f"llama.cpp has no architecture for model_type {model_type!r}",
            hint="edgekit converts the architectures llama.cpp supports "
            "(llama, mistral, qwen2, qwen3, gemma2, gemma3, phi3, ...).",
        )
    return name
