"""The long fuzz run of the readers (issue 14): GGUF header + memory estimate, and device profiles.

Mutants (tests/fixtures/mutators.py) of three GGUF seeds, the two tiny test models (built here) and
the default model's real header (262k-token vocabulary; its tensor data is a sparse hole, never
read), plus the built-in profiles. Each outcome must be a valid result or a clean EdgekitError,
within 2 s of CPU time and 500 MB of resident memory, with no negative memory estimate. (CPU time,
not wall time, decides "over 2 s": on a shared machine a case's wall time also holds other
processes' load; the largest wall time is printed too.)

    .venv/bin/python -m benchmarks.fuzz_readers --n 20000        # the run quoted in the README
    .venv/bin/python -m benchmarks.fuzz_readers --quick          # 1,000 mutants
    .venv/bin/python -m benchmarks.fuzz_readers --run 600        # + the second stage for 600 s

The second stage (--run SECONDS, issue 34) sends whole mutant models of the tiny F32 model whose
header is valid GGUF through `edgekit run --json` in a child: the loader-abort classes with
several seeds, then random mutants.

Targets: 0 uncaught, 0 over 2 s, 0 over 500 MB, 0 negative estimates; second stage: no signal,
hang, traceback, exit 0 on a refused file or non-JSON stdout.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import Counter
from pathlib import Path

import gguf

from benchmarks._common import verdict, write_json
from edgekit.devices.profiles import builtin_dir
from edgekit.paths import models_dir
from tests.fixtures.fuzz_harness import (
    MEMORY_LIMIT,
    TIME_LIMIT_S,
    RunSummary,
    Summary,
    fuzz_gguf,
    fuzz_profiles,
    fuzz_run,
)
from tests.fixtures.tiny_models import write_tiny_llama

DEFAULT_MODEL = models_dir() / "gemma-3-270m-q4_k_m.gguf"
# Shares of --n per target: the real header costs ~20x a tiny one (its vocabulary walk).
SHARES = {"tiny F32": 0.4, "tiny Q8_0": 0.2, "default model": 0.1, "profiles": 0.3}


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=20000, help="mutants in all")
    p.add_argument("--seed", type=int, default=14)
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="the real GGUF seed")
    p.add_argument("--quick", action="store_true", help="1,000 mutants")
    p.add_argument("--run", type=float, default=0, help="seconds of the second stage (0: off)")
    return p.parse_args()


def print_table(title: str, columns: list[str], rows: list[list[object]]) -> None:
    """Plain text at full width: the table is quoted from logs, where rich would squeeze it."""
    cells = [columns] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    print(f"\n{title}")
    for j, r in enumerate(cells):
        print(
            "| "
            + " | ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
            + " |"
        )
        if j == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")


def run(args: argparse.Namespace, work: Path) -> dict[str, Summary]:
    n = 1000 if args.quick else args.n
    seeds = {
        "tiny F32": write_tiny_llama(work / "tiny.gguf"),
        "tiny Q8_0": write_tiny_llama(
            work / "tiny-q8.gguf", weight_type=gguf.GGMLQuantizationType.Q8_0
        ),
    }
    if args.model.is_file():
        seeds["default model"] = args.model
    results: dict[str, Summary] = {}
    for name, path in seeds.items():
        count = round(n * SHARES[name])
        start = time.perf_counter()
        results[name] = fuzz_gguf(path, work, count, args.seed)
        print(f"{name}: {count} mutants in {time.perf_counter() - start:.0f} s", flush=True)
    profiles = sorted(builtin_dir().glob("*.toml"))
    results["profiles"] = fuzz_profiles(profiles, work, round(n * SHARES["profiles"]), args.seed)
    return results


def second_stage(args: argparse.Namespace, work: Path) -> RunSummary:
    """Rounds of fuzz_run (each: the loader-abort classes, then random mutants) until --run."""
    seed_file = write_tiny_llama(work / "tiny-run.gguf")
    total = RunSummary()
    end = time.perf_counter() + args.run
    round_seed = args.seed
    while time.perf_counter() < end:
        part = fuzz_run(seed_file, work, 40, round_seed, budget_s=end - time.perf_counter())
        total.outcomes += part.outcomes
        round_seed += 1
    return total


def main() -> int:
    args = parse()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="edgekit-fuzz-") as tmp:
        results = run(args, Path(tmp))
        stage2 = second_stage(args, Path(tmp)) if args.run > 0 else RunSummary()
    elapsed = time.perf_counter() - start
    rows = []
    for name, s in results.items():
        o = s.outcomes
        rows.append(
            [
                name,
                len(o),
                s.count(lambda x: x.kind == "ok"),
                s.count(lambda x: x.kind.startswith("error:")),
                s.uncaught,
                s.slow,
                s.big,
                s.negative,
                f"{max((x.seconds for x in o), default=0):.3f}",
                f"{max((x.wall_seconds for x in o), default=0):.3f}",
                f"{max((x.peak_bytes for x in o), default=0) / 2**20:.1f}",
            ]
        )
    columns = ["target", "mutants", "valid", "clean errors", "uncaught"]
    columns += [f"> {TIME_LIMIT_S:.0f} s CPU", f"> {MEMORY_LIMIT // 2**20} MB", "negative est."]
    columns += ["max CPU s", "max wall s", "max MB"]
    print_table(f"Reader fuzz, seed {args.seed} ({elapsed:.0f} s)", columns, rows)
    kinds: dict[str, int] = {}
    for s in results.values():
        for kind, count in s.kinds().items():
            kinds[kind] = kinds.get(kind, 0) + count
    by_count = sorted(kinds.items(), key=lambda kv: -kv[1])
    print_table("Outcomes", ["outcome", "count"], [list(kv) for kv in by_count])
    findings = [f for s in results.values() for f in s.findings()]
    for f in findings[:20]:
        print(f"finding: {f.target} {f.mutator} case {f.case}: {f.kind}")
    if stage2.outcomes:
        print(f"\nSecond stage: {len(stage2.outcomes)} whole models through `edgekit run --json`")
        print(stage2.table())
    for r in stage2.findings()[:20]:
        print(f"finding: run {r.mutator} case {r.case}: {r.kind} (exit {r.exit_code}) {r.detail}")
    write_json(
        "fuzz_readers",
        {
            "seed": args.seed,
            "seconds": elapsed,
            "targets": {r[0]: dict(zip(columns[1:], r[1:], strict=True)) for r in rows},
            "outcomes": kinds,
            "findings": [vars(f) for f in findings[:200]],
            "second_stage": {
                "outcomes": dict(Counter(o.kind for o in stage2.outcomes)),
                "findings": [vars(f) for f in stage2.findings()[:200]],
            },
        },
    )
    return verdict(
        not findings and not stage2.findings(),
        "0 uncaught, 0 over 2 s, 0 over 500 MB, 0 negative estimates",
    )


if __name__ == "__main__":
    raise SystemExit(main())
