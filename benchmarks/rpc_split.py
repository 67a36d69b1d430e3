"""Decode speed with the layers here vs on 1 and 2 loopback RPC workers, and the bytes per token.

Workers run on the CPU through rpc-server, whose buffers are plain CPU buffers: the weights are
not repacked into llama.cpp's CPU_REPACK layouts as they are in a local run, so other matmul
kernels run, and a greedy choice between two nearly tied tokens can differ (the text column says).

Three workers (llama.cpp's rpc-server, started as `edgekit worker` starts it): one for the
1-worker pool, two for the 2-worker pool, since a worker serves one client at a time. All three
configurations stay loaded and are timed interleaved, round after round. Bytes are the kernel's
TCP counters of the client's sockets to each worker (`ss -ti`: bytes_acked, bytes_received),
between the first and the last token of a generation, so no proxy sits in the timed path.

Loopback only: this measures the protocol's overhead and traffic, not a network. On two real
machines add the link's latency to every token (a few graph round trips per token).
"""

from __future__ import annotations

import re
import subprocess
import time
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
from edgekit.backends.llama_cpp.rpc.pool import open_pool, plan_pool
from edgekit.backends.llama_cpp.rpc.protocol import Endpoint, free_port
from edgekit.backends.llama_cpp.rpc.worker import Worker
from edgekit.backends.runner import open_runtime, plan_run
from edgekit.devices.profiles import load_profile


def socket_bytes(port: int) -> tuple[int, int]:
    """Bytes this host's client sockets sent to / received from a worker port, from the kernel's
    TCP counters (`ss -ti`: bytes_acked, bytes_received); no proxy in the path."""
    out = subprocess.run(
        ["ss", "-tinH", "state", "established", f"( dport = :{port} )"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    sent = sum(int(m) for m in re.findall(r"bytes_acked:(\d+)", out))
    received = sum(int(m) for m in re.findall(r"bytes_received:(\d+)", out))
    return sent, received


def timed(runtime: Runtime, tokens: list[int], n: int, ports: list[int]) -> dict[str, float]:
    stamps: list[float] = []
    io_at_first: list[tuple[int, int]] = []

    def on_token(_: str) -> None:
        stamps.append(time.perf_counter())
        if len(stamps) == 1:
            io_at_first.extend(socket_bytes(p) for p in ports)

    runtime.generate(tokens, SamplingParams(max_tokens=n, temperature=0.0, seed=1), on_token)
    io_end = [socket_bytes(p) for p in ports]
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
        ports = [w.endpoint.port for w in workers]
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
            runtimes[name] = (open_pool(pool), [ports[i] for i in chosen])
        for _ in range(rounds):
            for name, (runtime, its_ports) in runtimes.items():
                tokens = runtime.prompt_tokens(COUNTING_PROMPT)
                results.setdefault(name, []).append(timed(runtime, tokens, n_tokens, its_ports))
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
            "greedy_text": texts[name],
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
