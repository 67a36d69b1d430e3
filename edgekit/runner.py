"""From "run this model on that device" to a loaded runtime: the steps every front shares.

resolve the model -> read its header -> load the device profile -> estimate memory and refuse
what will not fit (before anything is loaded) -> probe the llama.cpp build -> load.
A GGUF runs on llama.cpp; an ONNX folder (from `edgekit convert --to onnx`) on onnxruntime.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from edgekit.default_model import fetch_default_model
from edgekit.devices import DeviceProfile, load_profile
from edgekit.gguf_file import ModelInfo, load_model_info
from edgekit.memory import MemoryEstimate, check_fit, estimate_memory

if TYPE_CHECKING:
    from edgekit.runtime.base import Runtime


@dataclass(frozen=True)
class RunPlan:
    info: ModelInfo
    profile: DeviceProfile
    n_ctx: int
    estimate: MemoryEstimate


def resolve_model(model: str | Path | None) -> Path:
    """A model path as given, or the embedded default model (fetched on first use)."""
    return fetch_default_model() if model is None else Path(model).expanduser()


def plan_run(model: str | Path | None, device: str, n_ctx: int | None = None) -> RunPlan:
    """Everything decided before loading; raises ModelTooBigError when it will not fit."""
    from edgekit.runtime.onnx_model import is_onnx_model, plan_onnx_run

    path = resolve_model(model)
    if is_onnx_model(path):
        return plan_onnx_run(path, device, n_ctx)
    profile = load_profile(device)
    info = load_model_info(path)
    ctx = n_ctx or min(profile.context, info.context_length)
    estimate = estimate_memory(info, profile, ctx)
    check_fit(estimate, info, profile)
    return RunPlan(info, profile, ctx, estimate)


def open_runtime(plan: RunPlan, verbose: bool = False) -> Runtime:
    from edgekit.runtime.onnx_model import is_onnx_model

    if is_onnx_model(plan.info.path):
        from edgekit.runtime.onnx_runtime import OnnxRuntime

        return OnnxRuntime(plan.info.path, plan.profile, plan.n_ctx)

    from edgekit.runtime.llama_cpp_runtime import LlamaCppRuntime
    from edgekit.runtime.probe import ensure_build_works

    ensure_build_works(plan.info.path, plan.profile.threads)
    return LlamaCppRuntime(plan.info, plan.profile, plan.n_ctx, verbose=verbose)
