"""Activation-spike profiles: the data model, the score, the HF -> GGUF name mapping and JSON IO.

A spike profile says, for every linear layer, how far the largest per-token activation |x| rises
above the typical token: score = max over tokens / median over tokens of the per-token max |x|.
The calibrator that runs the model (torch) lives in converters/; this module is pure numpy so the
planner, the CLI and the tests can read profiles without heavy imports.

The first position of every sequence (BOS) is excluded by the caller: transformer residual streams
carry a huge BOS-only channel (~1e5 on Gemma 3) that would otherwise dominate every score.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import numpy.typing as npt

from edgekit.errors import CalibrationError, UnsupportedArchitectureError
from edgekit.outputs import write_json

FORMAT_VERSION = 1
_SUFFIXES = (".weight", ".bias")


@dataclass(frozen=True)
class Stat:
    """Per-token max |x| summarised over the calibration tokens."""

    max: float
    median: float

    @property
    def score(self) -> float:
        # A zero median means a dead layer (all-zero activations): nothing spikes relative to it.
        return self.max / self.median if self.median > 0 else 0.0


@dataclass(frozen=True)
class LayerSpikes:
    module: str  # the model's own module name, e.g. model.layers.0.mlp.down_proj
    tensor: str  # its GGUF weight tensor, e.g. blk.0.ffn_down.weight
    block: int | None
    input: Stat
    output: Stat


@dataclass(frozen=True)
class SpikeProfile:
    model: str
    architecture: str
    n_tokens: int
    calibration_hash: str
    layers: tuple[LayerSpikes, ...]
    meta: dict[str, Any] = field(default_factory=dict)

    def scores(self, side: str = "input") -> dict[str, float]:
        """GGUF tensor name -> spike score of that layer's input (or output)."""
        return {layer.tensor: getattr(layer, side).score for layer in self.layers}

    def ranked(self, side: str = "input") -> list[LayerSpikes]:
        return sorted(self.layers, key=lambda layer: -getattr(layer, side).score)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT_VERSION,
            **asdict(self),
            "layers": [asdict(x) for x in self.layers],
        }

    def save(self, path: str | Path) -> Path:
        return write_json(Path(path), self.to_dict())


def summarize(per_token_max: npt.ArrayLike) -> Stat:
    """Max and median of per-token maxima (BOS positions already removed by the caller)."""
    values = np.asarray(per_token_max, dtype=np.float64).ravel()
    if values.size == 0:
        raise CalibrationError(
            "no calibration tokens reached this layer",
            hint="Give more calibration text (--calib-file): every sequence needs > 1 token.",
        )
    return Stat(max=float(values.max()), median=float(np.median(values)))


def calibration_hash(texts: Iterable[str]) -> str:
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode("utf-8"))
        h.update(b"\0")
    return "sha256:" + h.hexdigest()


def gguf_arch(architecture: str) -> gguf.MODEL_ARCH:
    by_name = {name: arch for arch, name in gguf.MODEL_ARCH_NAMES.items()}
    try:
        return by_name[architecture]
    except KeyError:
        raise UnsupportedArchitectureError(
            f"gguf does not know the architecture {architecture!r}",
            hint="Supported families include llama, mistral, qwen2 and gemma3.",
        ) from None


def gguf_tensor_name(module: str, architecture: str, n_blocks: int) -> str | None:
    """The GGUF name of a module's weight through gguf-py's own name table (None if unmapped)."""
    names = gguf.TensorNameMap(gguf_arch(architecture), n_blocks)
    return names.get_name(module + ".weight", try_suffixes=_SUFFIXES)


def block_of(tensor: str) -> int | None:
    parts = tensor.split(".")
    return int(parts[1]) if len(parts) > 2 and parts[0] == "blk" and parts[1].isdigit() else None


def _stat(d: Mapping[str, Any]) -> Stat:
    return Stat(max=float(d["max"]), median=float(d["median"]))


def from_dict(d: Mapping[str, Any]) -> SpikeProfile:
    try:
        layers = tuple(
            LayerSpikes(
                module=str(x["module"]),
                tensor=str(x["tensor"]),
                block=None if x.get("block") is None else int(x["block"]),
                input=_stat(x["input"]),
                output=_stat(x["output"]),
            )
            for x in d["layers"]
        )
        return SpikeProfile(
            model=str(d["model"]),
            architecture=str(d["architecture"]),
            n_tokens=int(d["n_tokens"]),
            calibration_hash=str(d["calibration_hash"]),
            layers=layers,
            meta=dict(d.get("meta", {})),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise CalibrationError(
            f"not a spike profile: missing or bad field {e}",
            hint="Use a JSON file written by `edgekit convert --scores-out`.",
        ) from None


def load_profile(path: str | Path) -> SpikeProfile:
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CalibrationError(f"spike profile not found: {p}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CalibrationError(f"{p} is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise CalibrationError(f"{p} is not a spike profile (expected a JSON object)")
    return from_dict(data)
