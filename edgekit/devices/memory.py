"""How much memory a model will need on a device, estimated from its GGUF header before loading.

The estimate is the peak resident memory of a session that fills its context, built from the
parts llama.cpp allocates (see llama-context.cpp / llama-kv-cache.cpp):
- weights: every tensor's bytes (mmap'd pages count once touched), plus a second copy of the
  weights llama.cpp repacks into CPU-friendly layouts at load time (the mapped pages stay resident);
- KV cache: per layer, cells x (K + V width) x bytes of the cache type, where sliding-window layers
  only keep window + ubatch cells (swa_full off, as llama-server does);
- compute: the graph allocator's working set for one full micro-batch: activations per token, and
  attention scores + masks per (token, KV cell), plus one row of logits;
- vocabulary: llama.cpp keeps each token's text, score and attributes and a text->id map;
- the process itself (interpreter and libraries), read from the running process.
A server with several slots (llama-server -np N, KV cache not unified) gives each slot its own KV
stream of the per-slot context (llama-context.cpp: n_ctx_seq = pad(n_ctx / n_seq_max, 256)) and
its own row of logits: `slots` multiplies those parts.
Constants marked "measured" were fitted on the default model on this project's x86 CI machine
(llama-cpp-python 0.3.36) and are checked against real peak RSS by
tests/backends/llama_cpp/test_real_model.py.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import psutil
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

from edgekit.devices.profiles import DeviceProfile, MiB
from edgekit.errors import MetadataValueError, ModelTooBigError
from edgekit.gguf.reader import ModelInfo
from edgekit.gguf.values import MAX_CONTEXT
from edgekit.quant.types import REPACKED_ON_CPU

VOCAB_BYTES_PER_TOKEN = 200  # measured: 51 MiB for Gemma 3's 262,144 tokens (vocab_only load)
# Per-token activation floats: FFN gate/up/act (3 x n_ff) and ~6 residual-width buffers (measured
# against a full 512-token micro-batch: 19.5 MiB).
FFN_BUFFERS, EMBD_BUFFERS = 3, 6
# Per (token, KV cell): one f32 score per head, plus the causal mask and its sliding-window twin.
MASKS = 2
KV_PAD = 256  # llama.cpp pads KV cache sizes to 256 cells


@dataclass(frozen=True)
class MemoryEstimate:
    weights: int
    repacked: int
    kv_cache: int
    compute: int
    vocab: int
    process: int
    context: int
    budget: int
    budget_source: str
    device_memory: bool  # the budget is GPU memory: the host-side parts do not count against it
    slots: int = 1  # server slots, each with `context` tokens of KV cache

    @property
    def total(self) -> int:
        return (
            self.weights + self.repacked + self.kv_cache + self.compute + self.vocab + self.process
        )

    @property
    def against_budget(self) -> int:
        if self.device_memory:
            return self.weights + self.kv_cache + self.compute
        return self.total

    @property
    def fits(self) -> bool:
        return self.against_budget <= self.budget

    def to_dict(self) -> dict[str, int | bool | str]:
        d: dict[str, int | bool | str] = dict(asdict(self))
        d.update(total=self.total, against_budget=self.against_budget, fits=self.fits)
        return d


def _pad(n: int) -> int:
    return -(-n // KV_PAD) * KV_PAD


def kv_cache_bytes(
    info: ModelInfo, n_ctx: int, ubatch: int, kv_type: GGMLQuantizationType, slots: int = 1
) -> int:
    """n_ctx is one slot's context; every slot has a stream of its own (llama-kv-cache.cpp)."""
    block, size = GGML_QUANT_SIZES[kv_type]
    width = (info.head_dim_k + info.head_dim_v) * info.n_head_kv
    full_cells = _pad(n_ctx)
    swa_cells = min(full_cells, _pad(info.sliding_window + ubatch))
    # Counted, not looped over layers: the cost must not depend on what a header claims.
    n_swa = sum(1 for i in info.swa_layers if 0 <= i < info.block_count)
    cells = n_swa * swa_cells + (info.block_count - n_swa) * full_cells
    return slots * cells * width * size // block


def compute_bytes(info: ModelInfo, n_ctx: int, ubatch: int, slots: int = 1) -> int:
    n_ff = _ffn_width(info)
    u = min(ubatch, n_ctx)
    activations = u * (FFN_BUFFERS * n_ff + EMBD_BUFFERS * info.n_embd) * 4
    attention = u * _pad(n_ctx) * (info.n_head + MASKS) * 4
    return activations + attention + slots * info.vocab_size * 4


def _ffn_width(info: ModelInfo) -> int:
    # The FFN width is not in ModelInfo for every architecture; the n_ff/n_embd ratio of common
    # LLaMA-family models (~2.7-4x) is covered by 4x when the header lacks it.
    return info.feed_forward_length or 4 * info.n_embd


def repacked_bytes(info: ModelInfo) -> int:
    # The token embedding is only gathered from (get_rows), so it is never repacked.
    return sum(
        t.n_bytes
        for t in info.tensors
        if t.ggml_type in REPACKED_ON_CPU and len(t.shape) == 2 and t.name != "token_embd.weight"
    )


def estimate_memory(
    info: ModelInfo,
    profile: DeviceProfile,
    n_ctx: int | None = None,
    process_bytes: int | None = None,
    slots: int = 1,
) -> MemoryEstimate:
    """Peak memory of running `info` on `profile` with a context of n_ctx (profile's by default)
    for each of `slots` parallel sequences."""
    ctx = n_ctx or profile.context
    check_shape(info, ctx, profile.ubatch)
    if slots < 1:
        raise ValueError(f"slots must be at least 1, not {slots}")
    on_cpu = profile.gpu_layers == 0
    if process_bytes is None:
        process_bytes = psutil.Process().memory_info().rss
    return MemoryEstimate(
        weights=info.tensor_bytes,
        repacked=repacked_bytes(info) if on_cpu else 0,
        kv_cache=kv_cache_bytes(info, ctx, profile.ubatch, profile.kv_cache_type, slots),
        compute=compute_bytes(info, ctx, profile.ubatch, slots),
        vocab=info.vocab_size * VOCAB_BYTES_PER_TOKEN,
        process=process_bytes,
        context=ctx,
        budget=profile.memory_budget_bytes,
        budget_source=profile.budget_source,
        device_memory=profile.budget_is_gpu_memory,
        slots=slots,
    )


def check_shape(info: ModelInfo, n_ctx: int, ubatch: int) -> None:
    """Refuse a shape no model has before estimating with it: a negative or zero width would
    give a negative estimate that always "fits". The GGUF reader checks the same on its side;
    this also covers models described by other back ends (ONNX configs)."""
    positive = {
        "block count": info.block_count,
        "embedding width": info.n_embd,
        "head count": info.n_head,
        "KV head count": info.n_head_kv,
        "key width": info.head_dim_k,
        "value width": info.head_dim_v,
        "context": n_ctx,
        "micro-batch": ubatch,
    }
    non_negative = {
        "feed-forward width": info.feed_forward_length,
        "vocabulary": info.vocab_size,
        "sliding window": info.sliding_window,
        "weights": info.tensor_bytes,
    }
    bad = [f"{k} {v}" for k, v in positive.items() if v < 1]
    bad += [f"{k} {v}" for k, v in non_negative.items() if v < 0]
    if n_ctx > MAX_CONTEXT:
        bad.append(f"context {n_ctx} (over {MAX_CONTEXT:,})")
    if bad:
        raise MetadataValueError(
            f"{info.path.name} cannot be estimated: impossible {', '.join(bad)}",
            hint="The model file or its config is damaged: download or convert it again.",
        )


def check_fit(estimate: MemoryEstimate, info: ModelInfo, profile: DeviceProfile) -> None:
    """Refuse, before loading, a model whose estimate exceeds the device's budget."""
    if estimate.fits:
        return
    need, have = estimate.against_budget / MiB, estimate.budget / MiB
    raise ModelTooBigError(
        f"{info.path.name} needs about {need:,.0f} MiB on {profile.name} but the budget is "
        f"{have:,.0f} MiB ({estimate.budget_source}): weights {estimate.weights / MiB:,.0f} MiB, "
        f"KV cache {estimate.kv_cache / MiB:,.0f} MiB at {estimate.context} tokens"
        f"{f' x {estimate.slots} slots' if estimate.slots > 1 else ''}, "
        f"compute {estimate.compute / MiB:,.0f} MiB",
        hint=_advice(estimate, info),
    )


def _advice(estimate: MemoryEstimate, info: ModelInfo) -> str:
    tips = []
    if estimate.slots > 1:
        tips.append(f"fewer slots (--parallel {max(1, estimate.slots // 2)})")
    if estimate.kv_cache > 0.2 * estimate.against_budget and estimate.context > 512:
        tips.append(f"a shorter context (--ctx {max(512, estimate.context // 4)})")
    if info.bits_per_weight > 5:
        tips.append("a smaller quantization (e.g. Q4_K_M via `edgekit convert`)")
    tips.append("a smaller model, or a device profile with more memory")
    return "Try " + ", or ".join(tips) + "."
