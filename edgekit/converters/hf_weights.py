"""Safetensors weights of a Hugging Face folder, read lazily without torch.

gguf-py's SafetensorsLocal parses the header and memory-maps each tensor, so a tensor is read
only when it is written and the whole model never sits in memory at once (small machines).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from gguf.utility import LocalTensor, SafetensorsLocal

from edgekit.errors import ConversionError

F32Array = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Weight:
    name: str
    shape: tuple[int, ...]
    load: Callable[[], F32Array]


def weight_files(source: Path) -> list[Path]:
    """The checkpoint's shards: those the index names, else model*.safetensors, else all.

    Some repositories (Mistral's) ship a second copy in their own layout
    (consolidated.safetensors) beside the Hugging Face shards; reading both would duplicate names.
    """
    index = source / "model.safetensors.index.json"
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise ConversionError(f"{index} is not a safetensors index: {e}") from None
        files = [source / f for f in sorted(set(weight_map.values()))]
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            raise ConversionError(
                f"{source} is missing shards named in its index: {', '.join(missing)}",
                hint="Download the whole checkpoint.",
            )
        return files
    return sorted(source.glob("model*.safetensors")) or sorted(source.glob("*.safetensors"))


def read_weights(source: Path) -> dict[str, Weight]:
    weights: dict[str, Weight] = {}
    for path in weight_files(source):
        try:
            tensors = SafetensorsLocal(path).tensors
        except (ValueError, KeyError, UnicodeDecodeError, OSError) as e:
            raise ConversionError(f"{path.name} is not a readable safetensors file: {e}") from None
        for name, t in tensors.items():
            weights[name] = Weight(name, t.shape, _loader(t, path))
    return weights


def _loader(t: LocalTensor, path: Path) -> Callable[[], F32Array]:
    def load() -> F32Array:
        raw = t.mmap_bytes()
        if t.dtype == "F32":
            data = raw.view(np.float32)
        elif t.dtype == "F16":
            data = raw.view(np.float16).astype(np.float32)
        elif t.dtype == "BF16":
            # bfloat16 is the top half of a float32: widen the bits, no rounding involved.
            data = (raw.view(np.uint16).astype(np.uint32) << 16).view(np.float32)
        else:
            raise ConversionError(
                f"{path.name}: tensor dtype {t.dtype} is not supported",
                hint="edgekit converts F32, F16 and BF16 checkpoints (not pre-quantized ones).",
            )
        return np.array(data.reshape(t.shape), dtype=np.float32)

    return load
