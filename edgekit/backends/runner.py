"""From "run this model on that device" to a loaded runtime: the steps every front shares.

resolve the model -> the back end that reads it -> its plan (header, device profile, memory
estimate; what will not fit is refused before anything is loaded) -> load.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

from edgekit.backends import backend_for, get_backend
from edgekit.backends.base import RunPlan
from edgekit.default_model import fetch_default_model
from edgekit.paths import check_model_path

if TYPE_CHECKING:
    from edgekit.backends.base import Runtime

__all__ = ["RunPlan", "clamp_threads", "open_runtime", "plan_run", "resolve_model"]


def resolve_model(model: str | Path | None) -> Path:
    """A model path as given, or the embedded default model (fetched on first use)."""
    return fetch_default_model() if model is None else check_model_path(Path(model).expanduser())


def plan_run(
    model: str | Path | None, device: str, n_ctx: int | None = None, threads: int | None = None
) -> RunPlan:
    """Everything decided before loading; raises ModelTooBigError when it will not fit.

    threads: a fixed thread count; None lets the back end follow the machine's load.
    """
    path = resolve_model(model)
    plan = backend_for(path).plan(path, device, n_ctx)
    return plan if threads is None else dataclasses.replace(plan, threads=threads)


def open_runtime(plan: RunPlan, verbose: bool = False) -> Runtime:
    return get_backend(plan.backend).open(plan, verbose)


def clamp_threads(plan: RunPlan) -> tuple[RunPlan, str | None]:
    """More threads than logical CPUs only makes them take turns (llama.cpp spins while it
    waits, so decoding gets slower, not faster). A count above the machine's, from -t or from a
    profile written for a bigger machine, is lowered to the CPUs this process may use, and the
    user is told; it is not refused, because the same profile is meant to travel."""
    from edgekit.devices.profiles import usable_cpus

    cpus = usable_cpus()
    if plan.threads is not None and plan.threads > cpus:
        note = f"-t {plan.threads} is more than the {cpus} CPUs here; using {cpus} threads"
        return dataclasses.replace(plan, threads=cpus), note
    if plan.threads is None and plan.profile.threads > cpus:
        note = (
            f"profile {plan.profile.name} asks for {plan.profile.threads} threads but there are "
            f"{cpus} CPUs here; using at most {cpus}"
        )
        profile = dataclasses.replace(plan.profile, threads=cpus)
        return dataclasses.replace(plan, profile=profile), note
    return plan, None
