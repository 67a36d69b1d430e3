"""A pool of devices for one model: this machine plus RPC workers, and how the layers split.

The split is pure planning (no sockets, no llama.cpp; `plan_pool` at the end asks the workers
first): given a model header, a device profile and each worker's memory (as it reports it: `edgekit
worker --mem` caps what it reports), decide how many layers each member holds and what that costs in
bytes, *exactly as llama.cpp will assign them*: llama-model.cpp keeps the first `n_layer + 1 -
n_gpu_layers` layers on the CPU and gives layer `i >= start` to the first device whose cumulative
`tensor_split` fraction exceeds `(i - start) / n_gpu_layers`; "layer" `n_layer` is the output head.
The input embedding always stays on the CPU. Because edgekit passes `n_gpu_layers` and
`tensor_split` explicitly, the split shown before loading is the split that happens.

The rule: every layer goes to the workers, in proportion to their memory (what llama-cli --rpc does
by default); when the workers cannot hold them all, the first layers stay here. A model that fits
nowhere is refused before loading, with the numbers of every member.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from gguf import GGML_QUANT_SIZES

from edgekit.backends.base import RunPlan
from edgekit.devices.memory import (
    KV_PAD,
    VOCAB_BYTES_PER_TOKEN,
    MemoryEstimate,
    compute_bytes,
    estimate_memory,
)
from edgekit.devices.profiles import DeviceProfile, MiB, load_profile
from edgekit.errors import ModelTooBigError, UnsupportedModelError
from edgekit.gguf.reader import ModelInfo, load_model_info
from edgekit.quant.types import REPACKED_ON_CPU

if TYPE_CHECKING:
    from edgekit.backends.llama_cpp.rpc.protocol import Endpoint, WorkerStatus
    from edgekit.backends.llama_cpp.rpc.runtime import Offload, RpcRuntime

LOCAL = "local"
_BLOCK = re.compile(r"^blk\.(\d+)\.")
_OUTPUT = ("output.weight", "output_norm.weight")


@dataclass(frozen=True)
class Member:
    """One device that can hold layers: this machine, or one device of a worker."""

    name: str  # "local", or the worker's HOST:PORT (with "#i" for its i-th device)
    budget: int
    budget_source: str


@dataclass(frozen=True)
class Share:
    member: Member
    layers: tuple[int, ...]  # block indices
    output: bool  # holds the output head
    weights: int
    kv_cache: int
    compute: int
    repacked: int = 0  # here only: CPU-friendly copies of quantized weights (memory.py)
    other: int = 0  # here only: the vocabulary and the process itself

    @property
    def total(self) -> int:
        return self.weights + self.repacked + self.kv_cache + self.compute + self.other

    @property
    def fits(self) -> bool:
        return self.total <= self.member.budget

    def describe_layers(self) -> str:
        return _ranges(self.layers) + (" + output" if self.output else "")

    def to_dict(self) -> dict[str, object]:
        return {
            "member": self.member.name,
            "layers": list(self.layers),
            "output": self.output,
            "weights": self.weights,
            "kv_cache": self.kv_cache,
            "compute": self.compute,
            "repacked": self.repacked,
            "other": self.other,
            "total": self.total,
            "budget": self.member.budget,
            "budget_source": self.member.budget_source,
            "fits": self.fits,
        }


@dataclass(frozen=True)
class PoolSplit:
    shares: tuple[Share, ...]  # local first, then the workers' devices in --rpc order
    n_gpu_layers: int  # what llama.cpp is given
    tensor_split: tuple[float, ...] = field(default=())

    @property
    def fits(self) -> bool:
        return all(s.fits for s in self.shares)

    def to_dict(self) -> dict[str, object]:
        return {
            "n_gpu_layers": self.n_gpu_layers,
            "tensor_split": list(self.tensor_split),
            "fits": self.fits,
            "shares": [s.to_dict() for s in self.shares],
        }


def _ranges(layers: tuple[int, ...]) -> str:
    if not layers:
        return "no layers"
    runs, start, prev = [], layers[0], layers[0]
    for i in (*layers[1:], None):
        if i is not None and i == prev + 1:
            prev = i
            continue
        runs.append(f"{start}" if start == prev else f"{start}-{prev}")
        if i is not None:
            start = prev = i
    word = "layer" if len(layers) == 1 else "layers"
    return f"{word} {', '.join(runs)}"


def assign(n_layer: int, n_gpu_layers: int, fractions: tuple[float, ...]) -> list[int]:
    """llama.cpp's device per layer (0..n_layer, the last one the output): -1 is the CPU."""
    units = n_layer + 1
    start = max(units - n_gpu_layers, 0)
    active = min(n_gpu_layers, units) if fractions else 0
    total = sum(fractions)
    cumulative, acc = [], 0.0
    for f in fractions:
        acc += f
        cumulative.append(acc / total if total else 0.0)
    out = []
    for il in range(units):
        if il < start or il - start >= active:
            out.append(-1)
        else:
            device = bisect_right(cumulative, (il - start) / active)
            out.append(min(device, len(fractions) - 1))
    return out


def layer_weights(info: ModelInfo) -> tuple[list[int], int, int, int]:
    """Bytes per block, of the output head, of what always stays here (the input embedding),
    and of the copy of token_embd a device other than the CPU needs when embeddings are tied."""
    per_block = [0] * info.block_count
    output = here = 0
    for t in info.tensors:
        m = _BLOCK.match(t.name)
        if m and int(m.group(1)) < info.block_count:
            per_block[int(m.group(1))] += t.n_bytes
        elif t.name in _OUTPUT:
            output += t.n_bytes
        else:
            here += t.n_bytes
    names = {t.name for t in info.tensors}
    # Tied embeddings: llama.cpp creates the output head as a duplicate of token_embd; on the CPU
    # it is the same mapped data, on another device a second copy.
    tied = 0
    if "output.weight" not in names:
        tied = next((t.n_bytes for t in info.tensors if t.name == "token_embd.weight"), 0)
    return per_block, output, here, tied


def _repacked(info: ModelInfo, block: int) -> int:
    prefix = f"blk.{block}."
    return sum(
        t.n_bytes
        for t in info.tensors
        if t.name.startswith(prefix) and t.ggml_type in REPACKED_ON_CPU and len(t.shape) == 2
    )


def kv_bytes_per_layer(
    info: ModelInfo, n_ctx: int, profile: DeviceProfile, slots: int = 1
) -> list[int]:
    """n_ctx is one slot's context; a server's every slot has its own KV stream."""
    block, size = GGML_QUANT_SIZES[profile.kv_cache_type]
    width = (info.head_dim_k + info.head_dim_v) * info.n_head_kv
    full = -(-n_ctx // KV_PAD) * KV_PAD
    swa = min(full, -(-(info.sliding_window + profile.ubatch) // KV_PAD) * KV_PAD)
    return [
        slots * (swa if i in info.swa_layers else full) * width * size // block
        for i in range(info.block_count)
    ]


def plan_split(
    info: ModelInfo,
    profile: DeviceProfile,
    estimate: MemoryEstimate,
    workers: list[Member],
) -> PoolSplit:
    """The split llama.cpp will make with the returned n_gpu_layers / tensor_split."""
    local = Member(LOCAL, profile.memory_budget_bytes, profile.budget_source)
    fractions = tuple(float(max(w.budget, 1)) for w in workers)
    units = info.block_count + 1
    best = _shares(info, profile, estimate, local, workers, units, fractions)
    if not workers:
        return best
    for n_gpu in range(units, -1, -1):
        split = _shares(info, profile, estimate, local, workers, n_gpu, fractions)
        if all(s.fits for s in split.shares[1:]):
            return split
    return best


def _shares(
    info: ModelInfo,
    profile: DeviceProfile,
    estimate: MemoryEstimate,
    local: Member,
    workers: list[Member],
    n_gpu: int,
    fractions: tuple[float, ...],
) -> PoolSplit:
    per_block, output_bytes, here_bytes, tied = layer_weights(info)
    kv = kv_bytes_per_layer(info, estimate.context, profile, estimate.slots)
    devices = assign(info.block_count, n_gpu, fractions)
    members = [local, *workers]
    shares = []
    for index, member in enumerate(members):
        mine = [il for il, d in enumerate(devices) if d == index - 1]
        blocks = tuple(il for il in mine if il < info.block_count)
        output = info.block_count in mine
        weights = sum(per_block[b] for b in blocks) + (output_bytes if output else 0)
        used = bool(blocks) or output
        if member is local:
            weights += here_bytes
            repacked = sum(_repacked(info, b) for b in blocks)
            other = info.vocab_size * VOCAB_BYTES_PER_TOKEN + estimate.process
            compute = estimate.compute
        else:
            weights += tied if output else 0
            repacked = other = 0
            compute = (
                compute_bytes(info, estimate.context, profile.ubatch, estimate.slots) if used else 0
            )
        shares.append(
            Share(
                member=member,
                layers=blocks,
                output=output,
                weights=weights,
                kv_cache=sum(kv[b] for b in blocks),
                compute=compute,
                repacked=repacked,
                other=other,
            )
        )
    return PoolSplit(tuple(shares), n_gpu_layers=n_gpu, tensor_split=fractions)


def check_pool_fit(split: PoolSplit, info: ModelInfo) -> None:
    """Refuse, before loading, a model the pool cannot hold; say what each member lacks."""
    if split.fits:
        return
    parts = [
        f"{s.member.name}: {s.describe_layers()} need {s.total / MiB:,.0f} MiB of "
        f"{s.member.budget / MiB:,.0f} MiB" + ("" if s.fits else " (too much)")
        for s in split.shares
    ]
    need = sum(s.total for s in split.shares)
    have = sum(s.member.budget for s in split.shares)
    raise ModelTooBigError(
        f"{info.path.name} does not fit this pool: about {need / MiB:,.0f} MiB needed, "
        f"{have / MiB:,.0f} MiB in all; " + "; ".join(parts),
        hint="Add a worker, give the workers more memory (`edgekit worker --mem MiB`), "
        "use a shorter context (--ctx), or a smaller quantization.",
    )


# --- planning against live workers ---------------------------------------------------------------


@dataclass(frozen=True)
class PoolPlan:
    """A RunPlan (its estimate is this machine's share) plus the split and the workers' answers."""

    run: RunPlan
    split: PoolSplit
    workers: tuple[WorkerStatus, ...]

    def offload(self) -> Offload:
        from edgekit.backends.llama_cpp.rpc.runtime import Offload

        return Offload(
            endpoints=tuple(w.endpoint for w in self.workers),
            n_gpu_layers=self.split.n_gpu_layers,
            tensor_split=self.split.tensor_split,
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "workers": [
                {"endpoint": str(w.endpoint), "version": ".".join(map(str, w.version))}
                for w in self.workers
            ],
            **self.split.to_dict(),
        }


def worker_endpoints(rpc: str | Sequence[str] | None, profile: DeviceProfile) -> list[Endpoint]:
    """--rpc when given, else the profile's `rpc = [...]`."""
    from edgekit.backends.llama_cpp.rpc.protocol import parse_endpoints

    return parse_endpoints(rpc if rpc else list(profile.rpc))


def members_of(statuses: Sequence[WorkerStatus]) -> list[Member]:
    return [
        Member(
            str(s.endpoint) + (f"#{i}" if len(s.devices) > 1 else ""),
            d.free,
            "free memory the worker reports (its --mem)",
        )
        for s in statuses
        for i, d in enumerate(s.devices)
    ]


def plan_pool(
    model: str | Path | None,
    device: str,
    n_ctx: int | None,
    rpc: str | Sequence[str] | None,
    slots: int = 1,
) -> PoolPlan:
    """Ask the workers, split the layers, refuse what does not fit; nothing is loaded yet.
    slots: a server's parallel sequences, each with n_ctx tokens of KV cache."""
    from edgekit.backends import backend_for
    from edgekit.backends.llama_cpp.rpc.protocol import probe_all
    from edgekit.backends.runner import resolve_model

    path = resolve_model(model)
    if backend_for(path).name != "llama_cpp":
        raise UnsupportedModelError(
            f"{path.name} is not a GGUF model; RPC workers run llama.cpp models only",
            hint="Convert it to GGUF (`edgekit convert`), or run it without --rpc.",
        )
    profile = load_profile(device)
    info = load_model_info(path)
    ctx = n_ctx or min(profile.context, info.context_length)
    estimate = estimate_memory(info, profile, ctx, slots=slots)
    statuses = probe_all(worker_endpoints(rpc, profile))
    split = plan_split(info, profile, estimate, members_of(statuses))
    check_pool_fit(split, info)
    here = split.shares[0]
    local = replace(estimate, weights=here.weights, repacked=here.repacked, kv_cache=here.kv_cache)
    return PoolPlan(RunPlan(info, profile, ctx, local), split, tuple(statuses))


def open_pool(plan: PoolPlan, verbose: bool = False) -> RpcRuntime:
    from edgekit.backends.llama_cpp.probe import ensure_build_works
    from edgekit.backends.llama_cpp.rpc.runtime import RpcRuntime

    ensure_build_works(plan.run.profile.threads)
    return RpcRuntime(plan.run, plan.offload(), verbose)
