"""The one table of model families edgekit knows, read by every converter and by calibration.

Per transformers `model_type`: the llama.cpp (GGUF) architecture, whether edgekit's own
HF -> GGUF writer converts it (converters/hf_to_gguf.py, with the per-family fixes below, as
the per-family classes of llama.cpp's convert_hf_to_gguf.py do) or llama.cpp's converter does,
and whether the ONNX export (optimum's exporter and the calibrator) handles it. A model_type not
listed is calibrated and converted by llama.cpp under its own name when gguf-py knows it.
Adding a family is one line here (plus, for a native one, what hf_arch.py must set for it).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import gguf

from edgekit.errors import UnsupportedArchitectureError

A = gguf.MODEL_ARCH


@dataclass(frozen=True)
class Family:
    arch: gguf.MODEL_ARCH  # the llama.cpp architecture
    native: bool = False  # edgekit's own HF -> GGUF writer converts it (else llama.cpp's)
    onnx: bool = False  # `convert --to onnx` exports it
    # llama.cpp's LLAMA graph rotates adjacent pairs, HF's Llama rotates halves: Q/K rows are
    # reordered to match. Qwen2 and Gemma3 use the half-rotation (NEOX) kernel, no reorder.
    permute_qk: bool = False
    # Gemma's RMSNorm scales by (1 + weight); llama.cpp's by weight.
    norm_shift: float = 0.0
    space_prefix: bool = True

    @property
    def name(self) -> str:
        """The architecture's name in GGUF files (general.architecture)."""
        return gguf.MODEL_ARCH_NAMES[self.arch]


_GEMMA3 = Family(A.GEMMA3, native=True, norm_shift=1.0, space_prefix=False)

FAMILIES: dict[str, Family] = {
    "llama": Family(A.LLAMA, native=True, onnx=True, permute_qk=True),
    "mistral": Family(A.LLAMA, native=True, onnx=True, permute_qk=True),  # dense Mistral = llama
    "qwen2": Family(A.QWEN2, native=True, onnx=True),
    "gemma3": _GEMMA3,
    "gemma3_text": replace(_GEMMA3, onnx=True),  # optimum's text-only Gemma 3
    "phi3small": Family(A.PHI3),
}

NATIVE = tuple(t for t, f in FAMILIES.items() if f.native)
EXPORTABLE = tuple(t for t, f in FAMILIES.items() if f.onnx)


def gguf_arch_name(model_type: str) -> str:
    """The llama.cpp architecture name of a transformers model_type."""
    family = FAMILIES.get(model_type)
    name = family.name if family else model_type
    if name not in gguf.MODEL_ARCH_NAMES.values():
        raise UnsupportedArchitectureError(
            f"llama.cpp has no architecture for model_type {model_type!r}",
            hint="edgekit converts the architectures llama.cpp supports "
            "(llama, mistral, qwen2, qwen3, gemma2, gemma3, phi3, ...).",
        )
    return name


def native_family(model_type: str) -> Family:
    """The family edgekit's own GGUF writer converts, or one clear error."""
    family = FAMILIES.get(model_type)
    if family is None or not family.native:
        raise UnsupportedArchitectureError(
            f"unsupported architecture {model_type!r}",
            hint=f"edgekit converts: {', '.join(sorted(NATIVE))}.",
        )
    return family
