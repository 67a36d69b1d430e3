"""`edgekit serve` under load against bare llama-server with the same flags and model.

Both servers run at once (idle llama-server threads sleep), on loopback, and the load alternates
between them round by round, the order rotating, so machine noise falls on both alike. At each
concurrency (1, 2, 4, 8) a round sends `concurrency` streaming /v1/completions requests at once
(the counting prompt: every request decodes exactly MAX_TOKENS tokens), from plain sockets in
threads, so the client costs both sides the same. Per round:
- aggregate decode tok/s = sum over requests of (tokens - 1) / (last token of any request - first
  token of any request): the first token pays for the prompt;
- TTFT per request: from sending the request to the first generated text. The p50 is over every
  request of the level, pooled over the rounds, with a 95% interval from resampling the round
  pairs: at c > 1 a request's TTFT falls on steps of llama-server's batch loop (its prompt joins
  the step under way or waits for the next), so one round's median jumps by a whole prompt step
  by chance, and a median of per-round differences scatters by tens of milliseconds.
Single-stream: edgekit serve at concurrency 1 against `edgekit run -p ... --json` decode tok/s;
a like-for-like pair only without --bias-adapter (run loads no adapter), so only then is it
part of the verdict.

Targets: edgekit serve >= 0.97x bare aggregate tok/s and <= +5 ms p50 TTFT at every concurrency;
single-stream >= 0.97x `edgekit run`. `--bias-adapter SPEC` runs both with the guard's adapter
(edgekit serve with the guard on, bare llama-server with the same --lora flags).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks._common import COUNTING_PROMPT, median, print_table, verdict, write_json
from edgekit.backends.llama_cpp.server import ServerConfig, ServerProcess, server_argv
from edgekit.serving.service import free_loopback_port, plan_serve

CONCURRENCY = (1, 2, 4, 8)
MAX_TOKENS = 64
QUICK_CONCURRENCY, QUICK_TOKENS = (1, 2), 16
CTX = 1024
TARGET_RATIO = 0.97
TARGET_TTFT_MS = 5.0
REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Target:
    name: str
    port: int
    key: str


@dataclass
class Timing:
    sent: float
    first: float | None = None
    last: float | None = None
    tokens: int = 0


def stream_one(target: Target, prompt: str, max_tokens: int, out: Timing) -> None:
    """One streaming completion; stamps the first and last chunk that carries text."""
    conn = http.client.HTTPConnection("127.0.0.1", target.port, timeout=300)
    body = json.dumps(
        {"prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "stream": True}
    )
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {target.key}"}
    out.sent = time.perf_counter()
    conn.request("POST", "/v1/completions", body, headers)
    resp = conn.getresponse()
    if resp.status != 200:
        raise SystemExit(f"{target.name}: HTTP {resp.status}: {resp.read()[:300]!r}")
    for raw in resp:
        line = raw.strip()
        if not line.startswith(b"data:") or line.endswith(b"[DONE]"):
            continue
        event = json.loads(line[5:])
        if event.get("choices") and event["choices"][0].get("text"):
            now = time.perf_counter()
            out.first = out.first or now
            out.last = now
            out.tokens += 1
    conn.close()


def one_round(target: Target, concurrency: int, round_no: int, max_tokens: int) -> dict[str, Any]:
    timings = [Timing(0.0) for _ in range(concurrency)]
    # A distinct first word per request and round: no slot can reuse another's cached prompt.
    threads = [
        threading.Thread(
            target=stream_one,
            args=(target, f"R{round_no}.{i} {COUNTING_PROMPT}", max_tokens, timings[i]),
        )
        for i in range(concurrency)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if any(t.first is None or t.last is None for t in timings):
        raise SystemExit(f"{target.name}: a request produced no text")
    firsts = [t.first for t in timings if t.first is not None]
    lasts = [t.last for t in timings if t.last is not None]
    span = max(lasts) - min(firsts)
    decoded = sum(t.tokens - 1 for t in timings)
    return {
        "aggregate_tok_s": decoded / span if span > 0 else 0.0,
        "ttft_ms": [((t.first or 0.0) - t.sent) * 1000 for t in timings],
        "tokens": [t.tokens for t in timings],
        "single_tok_s": (timings[0].tokens - 1) / ((timings[0].last or 0) - (timings[0].first or 0))
        if concurrency == 1
        else None,
    }


def ttft_interval(
    e: list[dict[str, Any]], b: list[dict[str, Any]], draws: int = 2000
) -> tuple[float, float]:
    """95% interval of the pooled p50 TTFT difference, resampling rounds as pairs."""
    rng = random.Random(0)
    diffs = []
    for _ in range(draws):
        picks = [rng.randrange(len(e)) for _ in e]
        e_ttft = [t for i in picks for t in e[i]["ttft_ms"]]
        b_ttft = [t for i in picks for t in b[i]["ttft_ms"]]
        diffs.append(median(e_ttft) - median(b_ttft))
    return percentile(diffs, 0.025), percentile(diffs, 0.975)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def start_edgekit(slots: int, bias: str | None) -> tuple[subprocess.Popen[str], Target]:
    key = secrets.token_urlsafe(16)
    cmd = [sys.executable, "-m", "edgekit", "serve", "--port", "0", "--json"]
    cmd += ["--parallel", str(slots), "--ctx", str(CTX), "--api-key", key]
    if bias:
        cmd += ["--bias-adapter", bias]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    ready = json.loads(proc.stdout.readline())
    return proc, Target("edgekit serve", int(ready["url"].rsplit(":", 1)[1]), key)


def start_bare(slots: int, bias: str | None) -> tuple[ServerProcess, Target]:
    plan = plan_serve(None, "cpu", CTX, slots)
    extra: tuple[str, ...] = ()
    if bias:
        from edgekit.serving.guard import guard_server_args, resolve_bias_adapter

        extra = tuple(guard_server_args(resolve_bias_adapter(bias, plan.run.info.path)))
    key, port = secrets.token_urlsafe(16), free_loopback_port()
    argv = server_argv(ServerConfig(plan.run, slots, port, key, extra_args=extra))
    server = ServerProcess(argv, Path(tempfile.gettempdir()) / f"bare-llama-server-{port}.log")
    server.wait_healthy(f"http://127.0.0.1:{port}", 300)
    return server, Target("llama-server", port, key)


def edgekit_run_tok_s(max_tokens: int) -> float:
    cmd = [sys.executable, "-m", "edgekit", "run", "-p", COUNTING_PROMPT, "-n", str(max_tokens)]
    cmd += ["--temp", "0", "--json"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    return float(json.loads(out.stdout)["stats"]["decode_tokens_per_s"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="a smoke test: 1 round, 16 tokens, 1 and 2 clients"
    )
    parser.add_argument("--rounds", type=int, default=10, help="rounds per server and level")
    parser.add_argument("--bias-adapter", default=None, help="FILE or auto: the guard on")
    args = parser.parse_args()
    rounds = 1 if args.quick else args.rounds
    levels = QUICK_CONCURRENCY if args.quick else CONCURRENCY
    max_tokens = QUICK_TOKENS if args.quick else MAX_TOKENS
    slots = max(CONCURRENCY)
    # SIGTERM (a timeout, a CI cancel) unwinds like Ctrl-C, so both servers are stopped.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    results: dict[str, dict[int, list[dict[str, Any]]]] = {}
    run_rates: list[float] = []
    proc, edge = start_edgekit(slots, args.bias_adapter)
    try:
        bare_server, bare = start_bare(slots, args.bias_adapter)
        try:
            results = {t.name: {c: [] for c in levels} for t in (edge, bare)}
            for target in (edge, bare):  # warm both: first requests pay for page faults
                one_round(target, 2, -1, max_tokens)
            for r in range(rounds):
                for c in levels:
                    order = (edge, bare) if (r + c) % 2 == 0 else (bare, edge)
                    for target in order:
                        results[target.name][c].append(one_round(target, c, r, max_tokens))
                run_rates.append(edgekit_run_tok_s(max_tokens))
        finally:
            bare_server.stop()
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
    return report(results, run_rates, edge.name, bare.name, rounds, max_tokens, args.bias_adapter)


def report(
    results: dict[str, dict[int, list[dict[str, Any]]]],
    run_rates: list[float],
    edge: str,
    bare: str,
    rounds: int,
    max_tokens: int,
    bias: str | None,
) -> int:
    rows, levels, ok = [], [], True
    for c in results[edge]:
        e, b = results[edge][c], results[bare][c]
        # Paired by round: the two servers' rounds ran back to back, so a slow minute of the
        # shared machine falls on both and cancels in the ratio; the median ignores a bad pair.
        ratios = [x["aggregate_tok_s"] / y["aggregate_tok_s"] for x, y in zip(e, b, strict=True)]
        ratio = median(ratios)
        e_tok = median([x["aggregate_tok_s"] for x in e])
        b_tok = median([x["aggregate_tok_s"] for x in b])
        e_ttft = [t for x in e for t in x["ttft_ms"]]
        b_ttft = [t for x in b for t in x["ttft_ms"]]
        extra_ms = median(e_ttft) - median(b_ttft)
        low_ms, high_ms = ttft_interval(e, b)
        ok = ok and ratio >= TARGET_RATIO and extra_ms <= TARGET_TTFT_MS
        rows.append(
            [c, f"{e_tok:.1f}", f"{b_tok:.1f}",
             f"{ratio:.3f} [{percentile(ratios, 0.25):.3f}, {percentile(ratios, 0.75):.3f}]",
             f"{median(e_ttft):.1f} / {percentile(e_ttft, 0.99):.1f}",
             f"{median(b_ttft):.1f} / {percentile(b_ttft, 0.99):.1f}",
             f"{extra_ms:+.1f} [{low_ms:+.1f}, {high_ms:+.1f}]"]
        )  # fmt: skip
        levels.append(
            {
                "concurrency": c,
                "edgekit_tok_s": e_tok,
                "llama_server_tok_s": b_tok,
                "ratio": ratio,
                "ratio_per_round": ratios,
                "ttft_p50_diff_ms": extra_ms,
                "ttft_p50_diff_ms_95": [low_ms, high_ms],
                "edgekit_ttft_ms_p50": median(e_ttft),
                "edgekit_ttft_ms_p99": percentile(e_ttft, 0.99),
                "llama_server_ttft_ms_p50": median(b_ttft),
                "llama_server_ttft_ms_p99": percentile(b_ttft, 0.99),
                "rounds": {edge: e, bare: b},
            }
        )
    print_table(
        f"edgekit serve vs bare llama-server: {max_tokens} tokens/request, {rounds} rounds/level",
        ["clients", "edgekit tok/s", "llama-server tok/s", "paired ratio [IQR]",
         "edgekit TTFT p50/p99 ms", "llama-server TTFT p50/p99 ms", "p50 TTFT diff ms [95%]"],
        rows,
    )  # fmt: skip
    serve_rates = [x["single_tok_s"] for x in results[edge][1]]
    single, run = median(serve_rates), median(run_rates)
    single_ratio = median([x / y for x, y in zip(serve_rates, run_rates, strict=True)])
    if bias is None:
        ok = ok and single_ratio >= TARGET_RATIO
    else:
        print("single stream: serve has the adapter and run has none, so not judged here")
    print_table(
        "single stream",
        ["path", "decode tok/s"],
        [["edgekit serve", f"{single:.1f}"], ["edgekit run", f"{run:.1f}"],
         ["paired ratio", f"{single_ratio:.3f}"]],
    )  # fmt: skip
    write_json(
        "serve_load",
        {
            "max_tokens": max_tokens,
            "context_per_slot": CTX,
            "rounds": rounds,
            "bias_adapter": bias,
            "levels": levels,
            "single_stream": {"serve_tok_s": single, "run_tok_s": run, "ratio": single_ratio,
                              "run_rounds": run_rates},
        },
    )  # fmt: skip
    return verdict(
        ok,
        f"edgekit serve >= {TARGET_RATIO}x llama-server tok/s and <= +{TARGET_TTFT_MS:.0f} ms "
        f"p50 TTFT at every concurrency; single stream >= {TARGET_RATIO}x edgekit run",
    )


if __name__ == "__main__":
    sys.exit(main())
