"""Helpers every benchmark shares: the --quick flag, a table, the JSON record, the verdict."""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import psutil
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from edgekit.backends.base import GenerationResult, Runtime
    from edgekit.backends.llama_cpp.runtime import LlamaCppRuntime
    from edgekit.backends.runner import RunPlan

RESULTS_DIR = Path(__file__).resolve().parent / "results"
# ../shared/bias-data beside the checkout (or beside a folder of worktrees); never copied in.
SHARED_BBQ = next(
    (
        d / "shared" / "bias-data" / "bbq"
        for d in Path(__file__).resolve().parents
        if (d / "shared" / "bias-data" / "bbq").is_dir()
    ),
    Path("../shared/bias-data/bbq"),
)
console = Console()
BUSY_WARNING = 0.05


def _cpu_sample() -> tuple[float, float, float]:
    t = psutil.cpu_times()
    # guest time is already inside user time on Linux; steal is other VMs taking our cores.
    busy = sum(t) - t.idle - getattr(t, "iowait", 0.0) - getattr(t, "guest", 0.0)
    own = psutil.Process().cpu_times()
    mine = own.user + own.system + own.children_user + own.children_system
    return time.monotonic(), float(busy), float(mine)


_START = _cpu_sample()


def other_cpu_share() -> float:
    """Share of all cores that other processes used since this benchmark started: this machine
    is shared, and llama.cpp's spinning threads slow down badly when a core is taken."""
    t1, busy1, mine1 = _cpu_sample()
    t0, busy0, mine0 = _START
    cores = os.cpu_count() or 1
    return max(0.0, (busy1 - busy0 - (mine1 - mine0)) / ((t1 - t0) * cores))


# Plain ASCII digits: every token is one streamed chunk (no held-back UTF-8 bytes), and the
# default model keeps counting past 128 tokens instead of emitting EOS, so both sides decode
# exactly max_tokens tokens.
COUNTING_PROMPT = "Count from 1 to 1000, separated by commas: 1, 2, 3, 4, 5,"


def parse_args(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="fewer rounds, for a smoke test")
    return parser.parse_args()


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else 0.0


def with_interval(d: dict[str, float], fmt: str = "{:.3f}") -> str:
    """A score dict {value, low, high} as 'value [low, high]'."""
    return f"{fmt.format(d['value'])} [{fmt.format(d['low'])}, {fmt.format(d['high'])}]"


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    table = Table(title=title)
    for i, col in enumerate(columns):
        table.add_column(col, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*(str(v) for v in row))
    console.print(table)


def machine() -> dict[str, Any]:
    # Recorded because this machine is shared: other processes' load explains outliers.
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "loadavg_1m": os.getloadavg()[0],
        "other_processes_cpu_share": other_cpu_share(),
    }


def write_json(name: str, payload: dict[str, Any]) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    record = {"benchmark": name, "machine": machine(), **payload}
    path.write_text(json.dumps(record, indent=2, default=str) + "\n")
    console.print(f"wrote {path}")
    return path


def verdict(passed: bool, what: str) -> int:
    """Print PASS/FAIL and return the process exit code."""
    busy = other_cpu_share()
    if busy > BUSY_WARNING:
        console.print(
            f"[yellow]warning: other processes used {busy:.0%} of the CPU during this run; "
            "rerun on a quiet machine before trusting absolute numbers[/]"
        )
    tag = "[bold green]PASS[/]" if passed else "[bold red]FAIL[/]"
    console.print(f"{tag} {what}")
    return 0 if passed else 1


def open_llama_runtime(plan: RunPlan) -> LlamaCppRuntime:
    """edgekit's open_runtime, narrowed: these benchmarks read llama.cpp's own perf counters."""
    from edgekit.backends import get_backend
    from edgekit.backends.runner import open_runtime

    # Ask the registry, not the runtime's class: the back end that reads the file is the one
    # whose perf counters these benchmarks read.
    if plan.backend != get_backend("llama_cpp").name:
        raise SystemExit(f"{plan.info.path} does not run on llama.cpp")
    return cast("LlamaCppRuntime", open_runtime(plan))


def edgekit_decode(rt: Runtime, tokens: list[int], max_tokens: int) -> GenerationResult:
    """One greedy generation through edgekit's public path, text sent where a front sends it."""
    from edgekit.backends.base import SamplingParams

    sink = io.StringIO()

    def on_token(piece: str) -> None:
        sink.write(piece)

    params = SamplingParams(max_tokens=max_tokens, temperature=0.0, seed=1)
    return rt.generate(tokens, params, on_token=on_token)


def decode_ms_per_token(rt: LlamaCppRuntime) -> float:
    """Time inside llama_decode per generated token (edgekit resets the counters per generate)."""
    perf = rt.lib.llama_perf_context(rt.llm.ctx)
    return float(perf.t_eval_ms / perf.n_eval) if perf.n_eval else 0.0
