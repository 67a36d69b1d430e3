"""A bounded, seeded mutation fuzz of the readers a model file or a profile reaches first.

Each mutant must end in a valid result or a clean EdgekitError, within 2 s and 500 MB, and no memory
estimate may be negative (issue 14). The mutators live in tests/fixtures/mutators.py; the long run
is benchmarks/fuzz_readers.py. A failure lists the mutator, the case number and the outcome, and the
case replays with random.Random(SEED * 1_000_003 + case)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from edgekit.devices.profiles import builtin_dir
from tests.fixtures.fuzz_harness import Summary, fuzz_gguf, fuzz_profiles, fuzz_run

SEED = 14
N_GGUF = 1000
N_PROFILES = 500
RUN_BUDGET_S = 50  # the second stage: no new case starts after this (one case takes 1-5 s)


def _report(summary: Summary) -> str:
    return "\n".join(
        f"{o.target} {o.mutator} case {o.case}: {o.kind} ({o.seconds:.2f} s CPU, "
        f"{o.peak_bytes / 2**20:.0f} MB{', negative estimate' if o.negative_estimate else ''})"
        for o in summary.findings()[:20]
    )


@pytest.mark.parametrize("model", ["tiny_model", "tiny_q8_model"])
def test_fuzz_gguf_header_and_memory_estimate(
    model: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    seed_file: Path = request.getfixturevalue(model)
    start = time.perf_counter()
    summary = fuzz_gguf(seed_file, tmp_path, N_GGUF // 2, SEED)
    assert not summary.findings(), _report(summary)
    kinds = summary.kinds()
    # The mutants reach past the first check: valid results and several kinds of clean error.
    assert kinds["ok"] > 0 and len([k for k in kinds if k.startswith("error:")]) >= 5
    assert time.perf_counter() - start < 30


def test_fuzz_profile_parser(tmp_path: Path) -> None:
    start = time.perf_counter()
    summary = fuzz_profiles(sorted(builtin_dir().glob("*.toml")), tmp_path, N_PROFILES, SEED)
    assert not summary.findings(), _report(summary)
    kinds = summary.kinds()
    assert kinds["ok"] > 0 and {"error:ProfileKeyError", "error:ProfileValueError"} <= set(kinds)
    assert time.perf_counter() - start < 30


def test_fuzz_second_stage_valid_headers_through_run(tiny_model: Path, tmp_path: Path) -> None:
    """Whole mutant models whose header reads as GGUF (the loader-abort classes of issue 34, then
    random stage-1 mutants) through `edgekit run --json` in a child: no signal, hang, traceback,
    exit 0 on a file edgekit's checks refuse, or stdout that is not one JSON object."""
    start = time.perf_counter()
    summary = fuzz_run(tiny_model, tmp_path, 40, SEED, budget_s=RUN_BUDGET_S)
    print(f"\nsecond stage, {len(summary.outcomes)} mutants in {time.perf_counter() - start:.0f} s")
    print(summary.table())
    findings = summary.findings()
    assert not findings, "\n".join(
        f"{o.mutator} case {o.case}: {o.kind} (exit {o.exit_code}) {o.detail}" for o in findings
    )
    kinds = {o.kind for o in summary.outcomes}
    assert len(summary.outcomes) >= 10 and "ok" in kinds and len(kinds) >= 3
    assert time.perf_counter() - start < RUN_BUDGET_S + 15  # the last case may start at 50 s
