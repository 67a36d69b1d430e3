"""edgekit's decode speed vs raw llama-cpp-python on the same model and settings.

Target: median edgekit tok/s / median raw tok/s >= 0.98.
"""

from __future__ import annotations

import time
from typing import Any

from benchmarks._common import (
    COUNTING_PROMPT,
    decode_ms_per_token,
    edgekit_decode,
    median,
    open_llama_runtime,
    parse_args,
    print_table,
    verdict,
    write_json,
)
from edgekit.backends.base import decode_rate
from edgekit.runner import plan_run

TARGET = 0.98
MAX_TOKENS = 128


def raw_decode(llm: Any, lib: Any) -> tuple[float, int, str, float]:
    """tok/s timed as edgekit times it (first to last streamed token), tokens, text, decode ms."""
    lib.llama_perf_context_reset(llm.ctx)
    stamps: list[float] = []
    pieces: list[str] = []
    stream = llm.create_completion(
        COUNTING_PROMPT, max_tokens=MAX_TOKENS, temperature=0.0, stream=True
    )
    for chunk in stream:
        choice = chunk["choices"][0]
        # The closing chunk only carries finish_reason; it comes after the last token.
        if choice["finish_reason"] is None:
            stamps.append(time.perf_counter())
            pieces.append(choice["text"])
    perf = lib.llama_perf_context(llm.ctx)
    ms = perf.t_eval_ms / perf.n_eval if perf.n_eval else 0.0
    if not stamps:
        return 0.0, 0, "", ms
    return decode_rate(len(stamps), stamps[0], stamps[-1]), len(stamps), "".join(pieces), ms


def main() -> int:
    args = parse_args(__doc__ or "")
    rounds = 2 if args.quick else 10
    plan = plan_run(None, "cpu")
    rt = open_llama_runtime(plan)
    lib = rt.lib
    llm = lib.Llama(
        str(plan.info.path),
        n_ctx=plan.n_ctx,
        n_threads=plan.profile.threads,
        n_threads_batch=plan.profile.threads,
        n_batch=plan.profile.batch,
        n_ubatch=plan.profile.ubatch,
        swa_full=False,
        verbose=False,
    )
    tokens = rt.prompt_tokens(COUNTING_PROMPT)
    edgekit_decode(rt, tokens, MAX_TOKENS)  # warm-up: page in weights, fill the prompt cache
    raw_decode(llm, lib)

    runs: list[dict[str, Any]] = []
    for i in range(rounds):
        row: dict[str, Any] = {"round": i, "order": "edgekit-first" if i % 2 == 0 else "raw-first"}
        # Alternating who goes first keeps a slow drift from always landing on one side.
        for side in ("edgekit", "raw") if i % 2 == 0 else ("raw", "edgekit"):
            if side == "edgekit":
                res = edgekit_decode(rt, tokens, MAX_TOKENS)
                row["edgekit"] = {
                    "tok_s": res.stats.decode_tokens_per_s,
                    "tokens": res.stats.generated_tokens,
                    "stop": res.stats.stop_reason,
                    "decode_ms": decode_ms_per_token(rt),
                }
                row["edgekit_text"] = res.text
            else:
                rate, n, text, ms = raw_decode(llm, lib)
                row["raw"] = {"tok_s": rate, "tokens": n, "decode_ms": ms}
                row["raw_text"] = text
        row["ratio"] = row["edgekit"]["tok_s"] / row["raw"]["tok_s"]
        runs.append(row)

    summary: dict[str, dict[str, float]] = {}
    for side in ("edgekit", "raw"):
        rates = [r[side]["tok_s"] for r in runs]
        # Per round, so wall and llama_decode time come from the same generation.
        wall = [1000 / r[side]["tok_s"] for r in runs]
        inside = [r[side]["decode_ms"] for r in runs]
        summary[side] = {
            "median_tok_s": median(rates),
            "min_tok_s": min(rates),
            "max_tok_s": max(rates),
            "wall_ms_per_tok": median(wall),
            "llama_decode_ms_per_tok": median(inside),
            "outside_decode_ms_per_tok": median([w - d for w, d in zip(wall, inside, strict=True)]),
        }
    ratio = summary["edgekit"]["median_tok_s"] / summary["raw"]["median_tok_s"]
    paired = median([r["ratio"] for r in runs])
    same_count = all(r["edgekit"]["tokens"] == r["raw"]["tokens"] == MAX_TOKENS for r in runs)
    same_text = all(r["edgekit_text"] == r["raw_text"] for r in runs)

    cols = ["side", "tok/s", "min", "max", "ms/tok", "in decode", "outside"]
    print_table(
        f"Decode: edgekit vs raw llama-cpp-python, {plan.info.name}, {plan.profile.threads} "
        f"threads, {MAX_TOKENS} tokens, {rounds} rounds (medians; ms/tok split into time "
        "inside llama_decode and outside it)",
        cols,
        [[side, *(f"{v:.2f}" for v in s.values())] for side, s in summary.items()],
    )
    print_table(
        "edgekit / raw",
        ["measure", "value"],
        [
            ["ratio of medians (target)", f"{ratio:.3f}"],
            ["median of per-round ratios", f"{paired:.3f}"],
            [f"both sides decoded {MAX_TOKENS} tokens every round", same_count],
            ["identical greedy text", same_text],
        ],
    )
    for r in runs:
        r.pop("edgekit_text")
        r.pop("raw_text")
    write_json(
        "run_overhead",
        {
            "model": str(plan.info.path),
            "threads": plan.profile.threads,
            "max_tokens": MAX_TOKENS,
            "rounds": rounds,
            "quick": args.quick,
            "prompt": COUNTING_PROMPT,
            "summary": summary,
            "ratio_of_medians": ratio,
            "median_paired_ratio": paired,
            "same_token_count": same_count,
            "same_text": same_text,
            "target": TARGET,
            "runs": runs,
        },
    )
    passed = same_count and ratio >= TARGET
    return verdict(passed, f"edgekit/raw decode ratio {ratio:.3f} (target >= {TARGET})")


if __name__ == "__main__":
    raise SystemExit(main())
