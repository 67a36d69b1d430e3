"""How close edgekit's decode gets to this machine's memory bandwidth, per thread count.

Decode reads every weight once per token, so tok/s x bytes read per token is the bandwidth it
achieves. Bandwidth is measured as STREAM does (benchmarks/stream.py: arrays >= 4x the last-level
cache, triad, best of several), at the same thread counts as the decode, interleaved with it.
Reported: the fraction of triad (and of a read-only stream) each thread count reaches, and what
limits it. Target: at the best thread count, decode >= 0.70 of the triad bandwidth.
"""

from __future__ import annotations

from gguf import GGML_QUANT_SIZES

from benchmarks._common import (
    COUNTING_PROMPT,
    console,
    decode_ms_per_token,
    edgekit_decode,
    median,
    open_llama_runtime,
    parse_args,
    print_table,
    verdict,
    write_json,
)
from benchmarks.stream import Stream
from edgekit.backends.runner import RunPlan, plan_run
from edgekit.devices.memory import KV_PAD
from edgekit.gguf.reader import ModelInfo

TARGET = 0.70
MAX_TOKENS = 128
GiB = 1 << 30


def _pad(n: int) -> int:
    return -(-n // KV_PAD) * KV_PAD


def kv_bytes_read(plan: RunPlan, position: int) -> int:
    """K and V bytes one decode step reads at `position`: llama.cpp attends over n_kv cells,
    the used cells rounded up to 256 (at least 256), capped by each layer's cache size."""
    info: ModelInfo = plan.info
    block, size = GGML_QUANT_SIZES[plan.profile.kv_cache_type]
    cell = (info.head_dim_k + info.head_dim_v) * info.n_head_kv * size // block
    swa_size = min(_pad(plan.n_ctx), _pad(info.sliding_window + plan.profile.ubatch))
    n_kv = max(KV_PAD, _pad(position + 1))
    return sum(
        min(n_kv, swa_size if i in info.swa_layers else _pad(plan.n_ctx)) * cell
        for i in range(info.block_count)
    )


def limit_note(rows: dict[int, dict[str, float]]) -> str:
    """What the numbers say limits decode, in one sentence."""
    ts = sorted(rows)
    lo, hi = rows[ts[0]], rows[ts[-1]]
    scale = hi["tok_s"] / lo["tok_s"] if lo["tok_s"] else 0.0
    bw_scale = hi["triad"] / lo["triad"] if lo["triad"] else 0.0
    best = max(rows.values(), key=lambda r: r["tok_s"])
    if best["of_triad"] >= 0.8:
        return (
            f"memory bandwidth: decode moves {best['of_triad']:.2f} of STREAM triad; more threads "
            "cannot help much"
        )
    return (
        f"not bandwidth. {ts[0]} thread, with no barriers at all, moves {lo['of_triad']:.2f} of "
        "its triad, so per-byte compute (unpacking the quantized blocks and the dot products) "
        f"limits it; {ts[-1]} threads give x{scale:.2f} the tok/s of {ts[0]} while triad grows "
        f"x{bw_scale:.2f} ({hi['of_triad']:.2f} of triad): the threads' synchronisation (a "
        "barrier after each of the graph's hundreds of small ops per token on a small model) "
        "eats the rest. "
        + (
            "llama_decode alone gives the same fractions, so it is not Python."
            if all(abs(r["kernel_of_triad"] - r["of_triad"]) < 0.03 for r in rows.values())
            else "llama_decode alone moves more: the time outside it (Python, sampling) counts too."
        )
    )


def main() -> int:
    args = parse_args(__doc__ or "")
    rounds = 2 if args.quick else 7
    plan = plan_run(None, "cpu")
    counts = sorted({1, 2, plan.profile.threads})
    runtimes = {t: open_llama_runtime(plan_run(None, "cpu", threads=t)) for t in counts}
    tokens = runtimes[1].prompt_tokens(COUNTING_PROMPT)
    stream = Stream(reps=3 if args.quick else 5)
    for rt in runtimes.values():
        edgekit_decode(rt, tokens, MAX_TOKENS)  # warm-up: page in the weights
    bw: dict[int, list[dict[str, float]]] = {t: [] for t in counts}
    rates: dict[int, list[float]] = {t: [] for t in counts}
    kernel_ms: dict[int, list[float]] = {t: [] for t in counts}
    try:
        for _ in range(rounds):
            # Bandwidth and decode alternate so a busy spell on this shared machine hits both.
            for t in counts:
                bw[t].append(stream.run(t))
                res = edgekit_decode(runtimes[t], tokens, MAX_TOKENS)
                if res.stats.generated_tokens != MAX_TOKENS:
                    raise SystemExit(f"decode stopped early ({res.stats.stop_reason})")
                rates[t].append(res.stats.decode_tokens_per_s)
                kernel_ms[t].append(decode_ms_per_token(runtimes[t]))
    finally:
        stream.close()
        for rt in runtimes.values():
            rt.close()

    first = len(tokens)  # position of the first decoded token's KV entry
    kv = sum(kv_bytes_read(plan, p) for p in range(first, first + MAX_TOKENS)) / MAX_TOKENS
    per_token = plan.info.tensor_bytes + kv
    rows: dict[int, dict[str, float]] = {}
    for t in counts:
        triad = max(b["triad"] for b in bw[t])
        read = max(b["read"] for b in bw[t])
        tok_s = median(rates[t])
        kernel = 1000 / median(kernel_ms[t])
        rows[t] = {
            "triad": triad,
            "read": read,
            "copy": max(b["copy"] for b in bw[t]),
            "tok_s": tok_s,
            "best_tok_s": max(rates[t]),
            "kernel_tok_s": kernel,
            "achieved": tok_s * per_token,
            "of_triad": tok_s * per_token / triad,
            "of_read": tok_s * per_token / read,
            "kernel_of_triad": kernel * per_token / triad,
        }
    print_table(
        f"STREAM bandwidth ({stream.array_bytes >> 20} MiB arrays, best of {rounds}x"
        f"{stream.reps}), GB/s",
        ["threads", "copy", "triad", "read-only"],
        [
            [t, f"{r['copy'] / 1e9:.1f}", f"{r['triad'] / 1e9:.1f}", f"{r['read'] / 1e9:.1f}"]
            for t, r in rows.items()
        ],
    )
    print_table(
        f"Bytes per decoded token, {plan.info.name} {plan.info.file_type}",
        ["part", "MB"],
        [
            ["weights (token_embd read whole: tied output)", f"{plan.info.tensor_bytes / 1e6:.1f}"],
            [f"KV cache, mean over positions {first}..{first + MAX_TOKENS - 1}", f"{kv / 1e6:.2f}"],
            ["total", f"{per_token / 1e6:.1f}"],
        ],
    )
    print_table(
        f"Decode through edgekit vs STREAM, {MAX_TOKENS} tokens, {rounds} rounds (medians)",
        [
            "threads",
            "tok/s",
            "GB/s moved",
            "of triad",
            "of read",
            "llama_decode tok/s",
            "its of triad",
        ],
        [
            [
                t,
                f"{r['tok_s']:.1f}",
                f"{r['achieved'] / 1e9:.1f}",
                f"{r['of_triad']:.2f}",
                f"{r['of_read']:.2f}",
                f"{r['kernel_tok_s']:.1f}",
                f"{r['kernel_of_triad']:.2f}",
            ]
            for t, r in rows.items()
        ],
    )
    note = limit_note(rows)
    console.print(f"limit: {note}")
    best = max(rows.values(), key=lambda r: r["tok_s"])
    write_json(
        "roofline",
        {
            "model": str(plan.info.path),
            "quick": args.quick,
            "rounds": rounds,
            "stream_array_bytes": stream.array_bytes,
            "stream": {str(t): v for t, v in bw.items()},
            "decode_tok_s": {str(t): v for t, v in rates.items()},
            "llama_decode_ms_per_token": {str(t): v for t, v in kernel_ms.items()},
            "weight_bytes": plan.info.tensor_bytes,
            "kv_bytes_per_token": kv,
            "bytes_per_token": per_token,
            "per_thread_count": {str(t): r for t, r in rows.items()},
            "limit": note,
            "target": TARGET,
            "target_checked_against": "median decode at the best thread count vs its best triad",
        },
    )
    return verdict(
        best["of_triad"] >= TARGET,
        f"decode reaches {best['of_triad']:.2f} of STREAM triad at its best thread count "
        f"({best['achieved'] / 1e9:.1f} of {best['triad'] / 1e9:.1f} GB/s) (target >= {TARGET})",
    )


if __name__ == "__main__":
    raise SystemExit(main())
