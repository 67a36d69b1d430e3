"""The llama.cpp back end: GGUF files through llama-cpp-python and llama.cpp's own tools.

This package is the only code that imports llama_cpp or ctypes; `backend` is what the registry
(edgekit.backends) hands to the fronts. Its modules load llama_cpp only when a model is opened, and
importing the package needs nothing beyond the standard library: setup.sh runs build.py before any
dependency is installed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from edgekit.backends import Capability

if TYPE_CHECKING:
    from edgekit.backends.base import RunPlan
    from edgekit.backends.llama_cpp.runtime import LlamaCppRuntime
    from edgekit.evaluate import EvalResult

GGUF_MAGIC = b"GGUF"
# ggml answers an abort by attaching gdb and printing ~20 KB of backtrace, on stdout too, which
# breaks --json; set before llama.cpp loads, and inherited by every child (probes, RPC runtime,
# rpc-server). The crash itself is reported by edgekit (probe.py, rpc/runtime.py).
os.environ.setdefault("GGML_NO_BACKTRACE", "1")


class LlamaCppBackend:
    name = "llama_cpp"
    capabilities = frozenset(Capability)

    def accepts(self, path: Path) -> bool:
        try:
            with path.open("rb") as f:
                return f.read(4) == GGUF_MAGIC
        except OSError:
            return False

    def plan(self, path: Path, device: str, n_ctx: int | None) -> RunPlan:
        from edgekit.backends.base import RunPlan
        from edgekit.devices.memory import check_fit, estimate_memory
        from edgekit.devices.profiles import load_profile
        from edgekit.gguf.reader import load_model_info

        profile = load_profile(device)
        info = load_model_info(path)
        ctx = n_ctx or min(profile.context, info.context_length)
        estimate = estimate_memory(info, profile, ctx)
        check_fit(estimate, info, profile)
        return RunPlan(info, profile, ctx, estimate, backend=self.name)

    def open(self, plan: RunPlan, verbose: bool = False) -> LlamaCppRuntime:
        from edgekit.backends.llama_cpp.probe import ensure_build_works, ensure_model_loads
        from edgekit.backends.llama_cpp.runtime import LlamaCppRuntime

        ensure_build_works(plan.profile.threads)
        ensure_model_loads(plan.info.path, plan.profile.threads)
        return LlamaCppRuntime(
            plan.info, plan.profile, plan.n_ctx, verbose=verbose, threads=plan.threads
        )

    def evaluate(
        self,
        reference: Path,
        candidates: Sequence[Path],
        text: str,
        max_windows: int,
        threads: int,
        progress: Callable[[int, int], None] | None = None,
    ) -> tuple[EvalResult, list[EvalResult]]:
        from edgekit.backends.llama_cpp.eval import Windows, evaluate

        return evaluate(
            reference,
            candidates,
            text,
            Windows(max_windows=max_windows),
            threads=threads,
            progress=progress,
        )

    def decode_speed(self, path: Path, threads: int) -> float:
        from edgekit.backends.llama_cpp.eval import decode_speed

        return decode_speed(path, threads)


backend = LlamaCppBackend()
