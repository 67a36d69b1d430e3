"""The shipped llama.cpp build's CPU kernels against a portable AVX2 build of the same source.

llama-bench pp512 and tg128 at 1 and 2 threads, the builds interleaved round by round, medians
over rounds. The shipped build is edgekit's (`tool_path("llama-bench")`, the setup's variant);
the AVX2 build is the same vendored tree with the portable flags of the old setup, llama-bench
target only:

    cmake -S <vendored llama.cpp> -B /tmp/avx2 -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON \
        -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DLLAMA_CURL=OFF -DLLAMA_BUILD_SERVER=OFF
    nice cmake --build /tmp/avx2 --target llama-bench -j1

A plain native build differs from the shipped one (native with AMX off) only on a CPU with AMX;
pass --native PATH to compare one there. Target: shipped pp512 >= 0.95x the native build's
(where native is the shipped build itself, that holds by construction and is said so).
"""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path
from typing import Any

from benchmarks._common import median, print_table, verdict, write_json
from edgekit.backends.llama_cpp.build import current_variant, tool_path
from edgekit.default_model import fetch_default_model

TARGET = 0.95
TESTS = (("pp512", 512, 0), ("tg128", 0, 128))


def cpu_has_amx() -> bool:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_tile" in text


def bench(exe: Path, model: Path, threads: list[int], reps: int) -> dict[tuple[str, int], float]:
    """tok/s per (test, threads) from one llama-bench call."""
    out: dict[tuple[str, int], float] = {}
    for name, n_prompt, n_gen in TESTS:
        cmd = [
            str(exe),
            "-m",
            str(model),
            "-p",
            str(n_prompt),
            "-n",
            str(n_gen),
            "-t",
            ",".join(map(str, threads)),
            "-r",
            str(reps),
            "-o",
            "json",
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise SystemExit(f"{exe} failed ({proc.returncode}): {proc.stderr[-2000:]}")
        for rec in json.loads(proc.stdout):
            out[(name, int(rec["n_threads"]))] = float(rec["avg_ts"])
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer rounds, for a smoke test")
    parser.add_argument("--avx2", type=Path, default=Path("/tmp/avx2/bin/llama-bench"))
    parser.add_argument("--native", type=Path, default=None, help="a plain native llama-bench")
    parser.add_argument("--model", type=Path, default=None)
    args = parser.parse_args()
    rounds, reps = (1, 1) if args.quick else (3, 2)
    threads = [1, 2]
    model = args.model or fetch_default_model()
    builds: dict[str, Path] = {f"shipped ({current_variant()})": tool_path("llama-bench")}
    if args.avx2.exists():
        builds["avx2 (portable)"] = args.avx2
    else:
        print(f"no AVX2 build at {args.avx2}: build it as this script's docstring says")
    if args.native is not None:
        builds["native"] = args.native
    runs: dict[str, list[dict[tuple[str, int], float]]] = {b: [] for b in builds}
    for _ in range(rounds):
        # Builds alternate within each round, so a busy spell on the machine hits all of them.
        for name, exe in builds.items():
            runs[name].append(bench(exe, model, threads, reps))
    cols = [(t, n) for t, _, _ in TESTS for n in threads]
    table: dict[str, dict[str, float]] = {
        b: {f"{t} {n}t": median([r[(t, n)] for r in rs]) for t, n in cols} for b, rs in runs.items()
    }
    print_table(
        f"llama-bench tok/s, {model.name}, medians of {rounds} interleaved rounds x {reps} reps",
        ["build", *(f"{t} {n} thread{'s' if n > 1 else ''}" for t, n in cols)],
        [[b, *(f"{v:.1f}" for v in row.values())] for b, row in table.items()],
    )
    shipped = next(iter(table))
    native = "native" if "native" in table else shipped
    native_note = (
        "a plain native build"
        if native == "native"
        else "the shipped build itself: this CPU has no AMX, so native == native minus AMX"
        if not cpu_has_amx()
        else "not measured (this CPU has AMX: pass --native)"
    )
    ratios = {k: table[shipped][k] / table[native][k] for k in table[shipped] if k.startswith("pp")}
    rows: list[list[Any]] = [[f"shipped / native, {k}", f"{v:.3f}"] for k, v in ratios.items()]
    if "avx2 (portable)" in table:
        for k, v in table[shipped].items():
            rows.append([f"shipped / avx2, {k}", f"{v / table['avx2 (portable)'][k]:.2f}"])
    print_table(f"Ratios (native is {native_note})", ["measure", "value"], rows)
    write_json(
        "kernels",
        {
            "model": str(model),
            "builds": {b: str(p) for b, p in builds.items()},
            "rounds": rounds,
            "reps": reps,
            "quick": args.quick,
            "table": table,
            "runs": {
                b: [{f"{t} {n}t": v for (t, n), v in r.items()} for r in rs]
                for b, rs in runs.items()
            },
            "native_is": native_note,
            "shipped_over_native_pp": ratios,
            "target": TARGET,
        },
    )
    worst = min(ratios.values())
    return verdict(worst >= TARGET, f"shipped pp512 = {worst:.3f}x native (target >= {TARGET})")


if __name__ == "__main__":
    raise SystemExit(main())
