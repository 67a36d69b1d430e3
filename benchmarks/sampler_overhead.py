"""What the dashboard's live metrics cost: decode tok/s with edgekit.tui.monitor running vs without.

"with" is what the dashboard does during a generation: the background sampler thread running and
every token counted through the on_token callback. Rounds alternate which side goes first so a
slow drift of the machine does not land on one side. Target: overhead <= 2% (ratio of medians).

    python benchmarks/sampler_overhead.py [--rounds N] [--interval S] [--model PATH]

Self-contained on purpose (no benchmarks/_common.py), so it runs as a file or as a module.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

from edgekit.backends.base import GenerationStats, Runtime, SamplingParams
from edgekit.backends.runner import RunPlan, open_runtime, plan_run
from edgekit.tui.monitor import DEFAULT_INTERVAL_S, MemoryReading, Monitor, read_memory

TARGET_OVERHEAD = 0.02
# Rounds of one side that spread wider than this (max - min over the median) mean the machine was
# busy with something else: a 2% difference cannot be told apart from that noise.
MAX_SPREAD = 0.10
MAX_TOKENS = 128
THREADS = 2
CONTEXT = 1024
# Greedy decoding keeps counting for well over 128 tokens, so no round stops early at EOS.
PROMPT = "Count from 1 to 500, separated by commas: 1, 2, 3, 4, 5,"
RESULTS = Path(__file__).resolve().parent / "results" / "sampler_overhead.json"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="rounds per side (>= 5)")
    parser.add_argument("--interval", type=float, default=DEFAULT_INTERVAL_S, help="sampler s")
    parser.add_argument("--model", default=None, help="a .gguf (default: the default model)")
    return parser.parse_args()


def load(model: str | None) -> tuple[RunPlan, Runtime]:
    plan = plan_run(model, "cpu", CONTEXT)
    plan = dataclasses.replace(plan, profile=dataclasses.replace(plan.profile, threads=THREADS))
    return plan, open_runtime(plan)


def decode_without(rt: Runtime, tokens: list[int], params: SamplingParams) -> GenerationStats:
    return rt.generate(tokens, params).stats


class TimedReader:
    """read_memory, keeping the CPU time the sampler thread spends in it."""

    def __init__(self) -> None:
        self.cpu_s = 0.0
        self.calls = 0

    def __call__(self) -> MemoryReading:
        start = time.thread_time()
        reading = read_memory()
        self.cpu_s += time.thread_time() - start
        self.calls += 1
        return reading


def decode_with(
    rt: Runtime, tokens: list[int], params: SamplingParams, interval_s: float
) -> tuple[GenerationStats, TimedReader]:
    """One generation as the dashboard runs it, with what its samples cost."""
    reader = TimedReader()
    monitor = Monitor(interval_s=interval_s, sample_memory=reader)
    monitor.start()
    try:
        monitor.begin_generation()
        stats = rt.generate(tokens, params, on_token=monitor.token_arrived).stats
        monitor.end_generation(stats)
    finally:
        monitor.stop()
    return stats, reader


def token_callback_cost_s(calls: int = 100_000) -> float:
    """CPU seconds per Monitor.token_arrived call, as made once per token during a generation."""
    monitor = Monitor()
    monitor.begin_generation()
    start = time.process_time()
    for _ in range(calls):
        monitor.token_arrived()
    return (time.process_time() - start) / calls


def run_rounds(rt: Runtime, rounds: int, interval_s: float) -> list[dict[str, Any]]:
    tokens = rt.prompt_tokens(PROMPT)
    params = SamplingParams(max_tokens=MAX_TOKENS, temperature=0.0, seed=1)
    decode_without(rt, tokens, params)  # warm-up: page the weights in
    runs = []
    for i in range(rounds):
        row: dict[str, Any] = {"round": i, "first": "without" if i % 2 == 0 else "with"}
        for side in ("without", "with") if i % 2 == 0 else ("with", "without"):
            if side == "without":
                stats = decode_without(rt, tokens, params)
            else:
                stats, reader = decode_with(rt, tokens, params, interval_s)
                row["samples"], row["sampler_cpu_s"] = reader.calls, reader.cpu_s
                row["with_total_s"] = stats.total_s
            row[side] = {"tok_s": stats.decode_tokens_per_s, "tokens": stats.generated_tokens}
        runs.append(row)
    return runs


def summarize(runs: list[dict[str, Any]], callback_s: float) -> dict[str, Any]:
    medians = {s: statistics.median(r[s]["tok_s"] for r in runs) for s in ("without", "with")}
    spread = max(
        (max(rates) - min(rates)) / medians[s]
        for s in ("without", "with")
        for rates in [[r[s]["tok_s"] for r in runs]]
    )
    paired = statistics.median(r["with"]["tok_s"] / r["without"]["tok_s"] for r in runs)
    sampler_cpu = sum(r["sampler_cpu_s"] for r in runs)
    samples = sum(r["samples"] for r in runs)
    return {
        "median_tok_s": medians,
        "overhead": 1 - medians["with"] / medians["without"],
        "median_paired_overhead": 1 - paired,
        "spread": spread,
        "noisy": spread > MAX_SPREAD,
        # The same cost by CPU accounting, which a busy machine does not blur: what the sampler
        # and the per-token callback take, as a share of the CPU the decode threads had.
        "sampler_cpu_per_sample_s": sampler_cpu / samples if samples else 0.0,
        "token_callback_cpu_s": callback_s,
        "cpu_share": (sampler_cpu + callback_s * MAX_TOKENS * len(runs))
        / (THREADS * sum(r["with_total_s"] for r in runs)),
        "all_full_length": all(
            r[s]["tokens"] == MAX_TOKENS for r in runs for s in ("without", "with")
        ),
    }


def print_report(plan: RunPlan, runs: list[dict[str, Any]], summary: dict[str, Any]) -> None:
    print(
        f"Sampler overhead: {plan.info.name}, {THREADS} threads, {MAX_TOKENS} tokens greedy, "
        f"{len(runs)} rounds per side, interleaved"
    )
    print(f"{'round':>5}  {'first':>7}  {'without tok/s':>13}  {'with tok/s':>10}  {'samples':>7}")
    for r in runs:
        print(
            f"{r['round']:>5}  {r['first']:>7}  {r['without']['tok_s']:>13.2f}  "
            f"{r['with']['tok_s']:>10.2f}  {r['samples']:>7}"
        )
    m = summary["median_tok_s"]
    print(f"{'median':>5}  {'':>7}  {m['without']:>13.2f}  {m['with']:>10.2f}")
    print(
        f"overhead (ratio of medians): {summary['overhead']:+.2%}   "
        f"median of per-round overheads: {summary['median_paired_overhead']:+.2%}   "
        f"target <= {TARGET_OVERHEAD:.0%}"
    )
    print(
        f"CPU accounting: {summary['sampler_cpu_per_sample_s'] * 1e6:.0f} us per sample, "
        f"{summary['token_callback_cpu_s'] * 1e6:.2f} us per token callback: "
        f"{summary['cpu_share']:.3%} of the decode threads' CPU"
    )


def main() -> int:
    args = parse_args()
    if args.rounds < 5:
        raise SystemExit("--rounds must be at least 5")
    load_before = os.getloadavg()[0]
    plan, rt = load(args.model)
    try:
        runs = run_rounds(rt, args.rounds, args.interval)
    finally:
        rt.close()
    summary = summarize(runs, token_callback_cost_s())
    print_report(plan, runs, summary)
    passed = summary["all_full_length"] and summary["overhead"] <= TARGET_OVERHEAD
    verdict = "PASS" if passed else "FAIL"
    if summary["noisy"]:
        verdict = f"INCONCLUSIVE: rounds spread {summary['spread']:.0%}, the machine was busy"
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "model": str(plan.info.path),
        "threads": THREADS,
        "max_tokens": MAX_TOKENS,
        "rounds": args.rounds,
        "interval_s": args.interval,
        "prompt": PROMPT,
        "load_average_1m": [load_before, os.getloadavg()[0]],
        "target_overhead": TARGET_OVERHEAD,
        "passed": passed,
        "verdict": verdict,
        **summary,
        "runs": runs,
    }
    RESULTS.write_text(json.dumps(record, indent=2) + "\n")
    print(f"{verdict}; wrote {RESULTS}")
    if summary["noisy"]:
        return 2
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
