"""The onnxruntime back end: ONNX folders written by `edgekit convert --to onnx`.

This package is the only code that imports onnxruntime; `backend` is what the registry hands to
the fronts. Reading a folder's files needs no onnxruntime, so a model is planned (and refused)
before the runtime loads.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from edgekit.backends import Capability
from edgekit.backends.base import RunPlan
from edgekit.backends.onnx.model import is_onnx_model, plan_onnx_run
from edgekit.devices.profiles import load_profile

if TYPE_CHECKING:
    from edgekit.backends.onnx.runtime import OnnxRuntime
    from edgekit.evaluate import EvalResult


class OnnxBackend:
    name = "onnx"
    capabilities = frozenset({Capability.GENERATE, Capability.EVALUATE})

    def accepts(self, path: Path) -> bool:
        return is_onnx_model(path)

    def plan(self, path: Path, device: str, n_ctx: int | None) -> RunPlan:
        return plan_onnx_run(path, device, n_ctx)

    def open(self, plan: RunPlan, verbose: bool = False) -> OnnxRuntime:
        from edgekit.backends.onnx.runtime import OnnxRuntime

        # onnxruntime's pool takes a fixed size only: -t sets it, else the profile's count.
        profile = (
            plan.profile if plan.threads is None else replace(plan.profile, threads=plan.threads)
        )
        return OnnxRuntime(plan.info.path, profile, plan.n_ctx)

    def evaluate(
        self,
        reference: Path,
        candidates: Sequence[Path],
        text: str,
        max_windows: int,
        threads: int,
        progress: Callable[[int, int], None] | None = None,
    ) -> tuple[EvalResult, list[EvalResult]]:
        from edgekit.backends.onnx.eval import evaluate_onnx

        profile = replace(load_profile("cpu"), threads=threads)
        return evaluate_onnx(
            reference, candidates, text, max_windows=max_windows, profile=profile, progress=progress
        )

    def decode_speed(self, path: Path, threads: int) -> float:
        from edgekit.backends.onnx.eval import decode_speed

        return decode_speed(path, replace(load_profile("cpu"), threads=threads))


backend = OnnxBackend()
