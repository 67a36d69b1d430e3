"""Back ends: the only code that imports llama_cpp, onnxruntime or ctypes.

Each back end is a `Backend` object registered by name. The built-in ones are found through the
same `edgekit.backends` entry-point group a third-party package would use (with a fallback list,
so a source checkout works uninstalled), and each declares what it can do as capabilities. The CLI,
the dashboard, bias and eval ask the registry for the back end that accepts a model path and has
the capability they need, instead of branching on file formats or runtime classes.

Importing this module is cheap: a back end's heavy library loads only when it opens a model.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from enum import StrEnum
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from edgekit.errors import RuntimeBackendError, UnsupportedModelError
from edgekit.paths import check_model_path

if TYPE_CHECKING:
    from edgekit.backends.base import RunPlan, Runtime
    from edgekit.evaluate import EvalResult

ENTRY_POINT_GROUP = "edgekit.backends"
_BUILTIN = {
    "llama_cpp": "edgekit.backends.llama_cpp:backend",
    "onnx": "edgekit.backends.onnx:backend",
}


class Capability(StrEnum):
    GENERATE = "generate"  # stream tokens: the Runtime protocol
    EVALUATE = "evaluate"  # PPL / KLD / top-1 against a reference, decode speed
    SCORE = "score"  # token log-probabilities and per-layer hidden states
    ADAPTERS = "adapters"  # LoRA adapters and control vectors applied at inference
    QUANTIZE = "quantize"  # write a quantized file with per-tensor types


class Backend(Protocol):
    name: str
    capabilities: frozenset[Capability]

    def accepts(self, path: Path) -> bool:
        """Whether this back end reads the model at `path` (a file or a folder)."""
        ...

    def plan(self, path: Path, device: str, n_ctx: int | None) -> RunPlan:
        """Everything decided before loading; raises ModelTooBigError when it will not fit."""
        ...

    def open(self, plan: RunPlan, verbose: bool = False) -> Runtime: ...

    def evaluate(
        self,
        reference: Path,
        candidates: Sequence[Path],
        text: str,
        max_windows: int,
        threads: int,
        progress: Callable[[int, int], None] | None = None,
    ) -> tuple[EvalResult, list[EvalResult]]: ...

    def decode_speed(self, path: Path, threads: int) -> float: ...


def _load(target: str) -> Backend:
    module, _, attr = target.partition(":")
    backend: Backend = getattr(importlib.import_module(module), attr)
    return backend


@cache
def registry() -> dict[str, Backend]:
    """Every back end by name: the built-ins, then installed plug-ins (which may replace them)."""
    found = {name: _load(target) for name, target in _BUILTIN.items()}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.value not in _BUILTIN.values():
            found[ep.name] = ep.load()
    return found


def get_backend(name: str) -> Backend:
    try:
        return registry()[name]
    except KeyError:
        raise RuntimeBackendError(
            f"no back end named {name!r}", hint="Known: " + ", ".join(registry())
        ) from None


def backend_for(path: Path, capability: Capability = Capability.GENERATE) -> Backend:
    """The back end that reads this model and can do `capability`; one clear error otherwise."""
    check_model_path(path)  # sniffing a FIFO would block
    readers = [b for b in registry().values() if b.accepts(path)]
    if not readers:
        # The GGUF reader gives the most precise message for a file that is no model at all.
        return registry()["llama_cpp"]
    able = [b for b in readers if capability in b.capabilities]
    if not able:
        raise UnsupportedModelError(
            f"{path.name} runs on {readers[0].name}, which cannot {capability.value}",
            hint="Convert the model to GGUF for this command.",
        )
    return able[0]
