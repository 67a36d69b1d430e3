"""Decode speed with the layers here vs on 1 and 2 loopback RPC workers, and the bytes per token.

Three workers (llama.cpp's rpc-server, started as `edgekit worker` starts it): one for the
1-worker pool, two for the 2-worker pool, since a worker serves one client at a time. All three
configurations stay loaded and are timed interleaved, round after round. Bytes are read from
each rpc-server's /proc/PID/io (rchar: what it read from its socket, wchar: what it wrote back),
between the first and the last token of a generation, so no proxy sits in the timed path.

Loopback only: this measures the protocol's overhead and traffic, not a network. On two real
machines add the link's latency to every token (a few graph round trips per token).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from benchmarks._common import (
    COUNTING_PROMPT,
    median,
    parse_args,
    print_table,
    verdict,
    write_json,
)
from edgekit.backends.base import Runtime, SamplingParams
from edgekit.backends.llama_cpp.rpc import Endpoint, free_port
from edgekit.backends.llama_cpp.worker import Worker
from edgekit.devices import load_profile
from edgekit.pool import open_pool, plan_pool
from edgekit.runner import open_runtime, plan_run


def proc_io(pid: int) -> tuple[int, int]:
    fields = dict(line.split(": ") for line in Path(f"/proc/{pid}/io").read_text().splitlines())
    return int(fields["rchar"]), int(fields["wchar"])


def timed(runtime: Runtime, tokens: list[int], n: int, pids: list[int]) -> dict[str, float]:
    stamps: list[float] = []
    io_at_first: list[tuple[int, int]] = []

    def on_token(_: str) -> None:
        stamps.append(time.perf_counter())
        if len(stamps) == 1:
            io_at_first.extend(proc_io(p) for p in pids)

    runtime.generate(tokens, SamplingParams(max_tokens=n, temperature=0.0, seed=1), on_token)
    io_end = [proc_io(p) for p in pids]
    steps = len(stamps) - 1
    to_workers = sum(e[0] - s[0] for s, e in zip(io_at_first, io_end, strict=True))
    from_workers = sum(e[1] - s[1] for s, e in zip(io_at_first, io_end, strict=True))
    return {
        "tok_s": steps / (stamps[-1] - stamps[0]) if steps > 0 else 0.0,
        "bytes_to_workers_per_token": to_workers / steps if steps else 0.0,
        "bytes_from_workers_per_token": from_workers / steps if steps else 0.0,
    }


def main() -> int:
    args = parse_args(__doc__ or "")
    rounds, n_tokens = (1, 32) if args.quick else (3, 64)
    profile = load_profile("cpu")
    workers = [Worker(Endpoint("127.0.0.1", free_port()), profile) for _ in range(3)]
    runtimes: dict[str, tuple[Runtime, list[int]]] = {}
    results: dict[str, list[dict[str, float]]] = {}
    texts: dict[str, str] = {}
    try:
        for w in workers:
            w.start()
        pids = [w.process.pid for w in workers if w.process]
        local_plan = plan_run(None, "cpu", 512)
        runtimes["local"] = (open_runtime(local_plan), [])
        for name, chosen in (("1 worker", [0]), ("2 workers", [1, 2])):
            pool = plan_pool(None, "cpu", 512, ",".join(str(workers[i].endpoint) for i in chosen))
            layers = [s.describe_layers() for s in pool.split.shares]
            print(
                f"{name}: "
                + " | ".join(
                    f"{s.member.name}: {d}" for s, d in zip(pool.split.shares, layers, strict=True)
                )
            )
            runtimes[name] = (open_pool(pool), [pids[i] for i in chosen])
        for _ in range(rounds):
            for name, (runtime, its_pids) in runtimes.items():
                tokens = runtime.prompt_tokens(COUNTING_PROMPT)
                results.setdefault(name, []).append(timed(runtime, tokens, n_tokens, its_pids))
        for name, (runtime, _) in runtimes.items():
            tokens = runtime.prompt_tokens(COUNTING_PROMPT)
            texts[name] = runtime.generate(
                tokens, SamplingParams(max_tokens=24, temperature=0.0, seed=1)
            ).text
    finally:
        for runtime, _ in runtimes.values():
            runtime.close()
        for w in workers:
            w.stop()
    base = median([r["tok_s"] for r in results["local"]])
    rows: list[list[Any]] = []
    summary: dict[str, Any] = {}
    for name, runs in results.items():
        tok_s = median([r["tok_s"] for r in runs])
        to_w = median([r["bytes_to_workers_per_token"] for r in runs])
        from_w = median([r["bytes_from_workers_per_token"] for r in runs])
        same = texts[name] == texts["local"]
        rows.append(
            [name, f"{tok_s:.1f}", f"{tok_s / base:.2f}", f"{to_w:,.0f}", f"{from_w:,.0f}", same]
        )
        summary[name] = {
            "tok_s": tok_s,
            "ratio_to_local": tok_s / base if base else 0.0,
            "bytes_to_workers_per_token": to_w,
            "bytes_from_workers_per_token": from_w,
            "greedy_text_equals_local": same,
            "runs": runs,
        }
    print_table(
        f"decode on loopback workers ({n_tokens} tokens x {rounds} rounds, interleaved)",
        ["layers on", "tok/s", "vs local", "B/token to workers", "B/token back", "same text"],
        rows,
    )
    write_json("rpc_split", {"rounds": rounds, "tokens": n_tokens, "results": summary})
    same_all = all(v["greedy_text_equals_local"] for v in summary.values())
    return verdict(same_all, "greedy text on 1 and 2 workers equals the local run")


if __name__ == "__main__":
    raise SystemExit(main())
