"""edgekit's decode against llama.cpp's own llama-bench tg, on the same build and model.

llama-bench decodes without sampling or detokenizing, straight from C++: it is the limit. edgekit
(plan_run -> open_runtime -> generate, greedy, text streamed to a sink as a front would) runs the
same number of tokens with the same thread count; raw llama-cpp-python (`create_completion`,
stream=True), the old path, is measured too. The three alternate within each round, the order
rotating; medians and per-round ratios are reported per thread count.

Target: median edgekit / median llama-bench tg >= 0.97 at every thread count.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from typing import Any

from benchmarks._common import (
    COUNTING_PROMPT,
    edgekit_decode,
    median,
    open_llama_runtime,
    parse_args,
    print_table,
    verdict,
    write_json,
)
from edgekit.backends.base import decode_rate
from edgekit.backends.llama_cpp.build import tool_path
from edgekit.backends.runner import RunPlan, plan_run

TARGET = 0.97
MAX_TOKENS = 128


def llama_bench_tg(plan: RunPlan, threads: int) -> float:
    """tg128 tok/s from one llama-bench call (its own warm-up run, then one timed run)."""
    cmd = [str(tool_path("llama-bench")), "-m", str(plan.info.path), "-p", "0"]
    cmd += ["-n", str(MAX_TOKENS), "-t", str(threads), "-r", "1", "-o", "json"]
    cmd += ["-fa", "1" if plan.profile.flash_attn else "0", "-b", str(plan.profile.batch)]
    cmd += ["-ub", str(plan.profile.ubatch), "-ngl", str(plan.profile.gpu_layers)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"llama-bench failed: {out.stderr[-2000:]}")
    return float(json.loads(out.stdout)[0]["avg_ts"])


def raw_decode(llm: Any) -> float:
    """llama-cpp-python's own streaming path, timed as edgekit times it (first to last token)."""
    stamps: list[float] = []
    llm.reset()
    stream = llm.create_completion(
        COUNTING_PROMPT, max_tokens=MAX_TOKENS, temperature=0.0, stream=True
    )
    for chunk in stream:
        if chunk["choices"][0]["finish_reason"] is None:
            stamps.append(time.perf_counter())
    return decode_rate(len(stamps), stamps[0], stamps[-1]) if stamps else 0.0


def measure(threads: int, rounds: int) -> dict[str, Any]:
    plan = plan_run(None, "cpu", threads=threads)
    rt = open_llama_runtime(plan)
    tokens = rt.prompt_tokens(COUNTING_PROMPT)
    raw = rt.lib.Llama(
        str(plan.info.path),
        n_ctx=plan.n_ctx,
        n_threads=threads,
        n_threads_batch=threads,
        n_batch=plan.profile.batch,
        n_ubatch=plan.profile.ubatch,
        verbose=False,
    )

    def edgekit() -> float:
        res = edgekit_decode(rt, tokens, MAX_TOKENS)
        if res.stats.generated_tokens != MAX_TOKENS:
            raise SystemExit(f"decode stopped early ({res.stats.stop_reason})")
        return res.stats.decode_tokens_per_s

    sides: dict[str, Callable[[], float]] = {
        "edgekit": edgekit,
        "llama-bench": lambda: llama_bench_tg(plan, threads),
        "llama-cpp-python": lambda: raw_decode(raw),
    }
    edgekit()  # warm-up: page in the weights
    raw_decode(raw)
    runs: list[dict[str, float]] = []
    names = list(sides)
    try:
        for i in range(rounds):
            order = names[i % 3 :] + names[: i % 3]  # who goes first rotates
            runs.append({name: sides[name]() for name in order})
    finally:
        raw.close()
        rt.close()
    return {
        "threads": threads,
        "runs": runs,
        "median": {n: median([r[n] for r in runs]) for n in names},
        "paired_edgekit_over_bench": median([r["edgekit"] / r["llama-bench"] for r in runs]),
    }


def main() -> int:
    args = parse_args(__doc__ or "")
    rounds = 3 if args.quick else 9
    results = [measure(t, rounds) for t in (1, 2)]
    rows = []
    for res in results:
        m = res["median"]
        rows.append(
            [
                res["threads"],
                f"{m['llama-bench']:.1f}",
                f"{m['edgekit']:.1f}",
                f"{m['llama-cpp-python']:.1f}",
                f"{m['edgekit'] / m['llama-bench']:.3f}",
                f"{res['paired_edgekit_over_bench']:.3f}",
                f"{m['llama-cpp-python'] / m['llama-bench']:.3f}",
            ]
        )
    print_table(
        f"Decode tok/s, {MAX_TOKENS} tokens, greedy, {rounds} interleaved rounds (medians)",
        [
            "threads",
            "llama-bench tg",
            "edgekit",
            "llama-cpp-python",
            "edgekit / bench",
            "paired",
            "llama-cpp-python / bench",
        ],
        rows,
    )
    ratios = [r["median"]["edgekit"] / r["median"]["llama-bench"] for r in results]
    write_json(
        "run_overhead",
        {"max_tokens": MAX_TOKENS, "rounds": rounds, "quick": args.quick, "results": results},
    )
    worst = min(ratios)
    return verdict(
        worst >= TARGET,
        f"edgekit / llama-bench tg = {', '.join(f'{r:.3f}' for r in ratios)} at 1, 2 threads "
        f"(target >= {TARGET})",
    )


if __name__ == "__main__":
    raise SystemExit(main())
