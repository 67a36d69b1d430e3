"""Run mutants through edgekit's readers and classify each outcome, with time and memory bounds.

Shared by tests/test_fuzz_readers.py (a few hundred mutants in CI) and benchmarks/fuzz_readers.py
(the long run). An outcome is fine when it is a valid result or a clean EdgekitError; it is a
finding when it is any other exception, takes over TIME_LIMIT_S of CPU time (its own work; wall
time on a shared machine also holds other processes' load, so it is only recorded), grows the
process over MEMORY_LIMIT (peak resident memory during the case: Linux's VmHWM, reset before each
case), or yields a negative memory estimate.
"""

from __future__ import annotations

import contextlib
import random
import resource
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from edgekit.devices import DeviceProfile, all_profiles, parse_profile
from edgekit.errors import EdgekitError
from edgekit.gguf_file import model_info, read_header
from edgekit.memory import estimate_memory
from tests.mutators import Layout, gguf_mutant, parse_layout, profile_mutant, write_mutant

TIME_LIMIT_S = 2.0
MEMORY_LIMIT = 500 * 2**20
HARD_STOP_S = 10.0  # a case still running then is stopped (and counted as slow and uncaught)


class _Stopped(Exception):
    pass


@dataclass
class Outcome:
    target: str
    mutator: str
    case: int
    kind: str  # "ok", "error:<class>", or "uncaught:<class>"
    seconds: float  # CPU time of the case
    peak_bytes: int
    negative_estimate: bool = False
    wall_seconds: float = 0.0

    @property
    def finding(self) -> bool:
        return (
            self.kind.startswith("uncaught")
            or self.seconds > TIME_LIMIT_S
            or self.peak_bytes > MEMORY_LIMIT
            or self.negative_estimate
        )


@dataclass
class Summary:
    outcomes: list[Outcome] = field(default_factory=list)

    def count(self, what: Callable[[Outcome], bool]) -> int:
        return sum(1 for o in self.outcomes if what(o))

    @property
    def uncaught(self) -> int:
        return self.count(lambda o: o.kind.startswith("uncaught"))

    @property
    def slow(self) -> int:
        return self.count(lambda o: o.seconds > TIME_LIMIT_S)

    @property
    def big(self) -> int:
        return self.count(lambda o: o.peak_bytes > MEMORY_LIMIT)

    @property
    def negative(self) -> int:
        return self.count(lambda o: o.negative_estimate)

    def kinds(self) -> Counter[str]:
        return Counter(o.kind for o in self.outcomes)

    def findings(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.finding]


@contextlib.contextmanager
def bounded(limit_bytes: int = 4 * MEMORY_LIMIT) -> Iterator[None]:
    """Address-space cap and an alarm for the whole run: a runaway case fails (MemoryError,
    _Stopped) instead of taking the shared machine down."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/statm") as f:
        vms = int(f.read().split()[0]) * resource.getpagesize()
    cap = vms + limit_bytes
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))

    def stop(signum: int, frame: FrameType | None) -> None:
        raise _Stopped(f"still running after {HARD_STOP_S} s")

    previous = signal.signal(signal.SIGALRM, stop)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _status_kib(field_name: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field_name} in /proc/self/status")


def _reset_peak() -> int:
    """Reset the peak RSS to the current one (Linux >= 4.0); the current RSS in bytes."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return _status_kib("VmRSS") * 1024


def _run(target: str, mutator: str, case: int, work: Callable[[], bool]) -> Outcome:
    base = _reset_peak()
    start, cpu_start = time.perf_counter(), time.process_time()
    negative = False
    signal.setitimer(signal.ITIMER_REAL, HARD_STOP_S)
    try:
        negative = work()
        kind = "ok"
    except EdgekitError as e:
        kind = f"error:{type(e).__name__}"
    except (Exception, _Stopped) as e:
        kind = f"uncaught:{type(e).__name__}: {str(e)[:120]}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    cpu, wall = time.process_time() - cpu_start, time.perf_counter() - start
    peak = max(0, _status_kib("VmHWM") * 1024 - base)
    return Outcome(target, mutator, case, kind, cpu, peak, negative, wall)


def check_model(path: Path, profiles: list[DeviceProfile]) -> bool:
    """Header -> model info -> memory estimate on every profile; True if any part is negative."""
    info = model_info(read_header(path))
    negative = False
    for p in profiles:
        e = estimate_memory(info, p, process_bytes=0)
        parts = (e.weights, e.repacked, e.kv_cache, e.compute, e.vocab, e.total)
        negative |= any(x < 0 for x in parts)
    return negative


def load_seed(path: Path) -> tuple[Layout, bytes]:
    """A valid model's layout and header bytes (padding included); its tensor data is never read,
    so a 250 MB model costs only its header here."""
    h = read_header(path)
    with path.open("rb") as f:
        head = f.read(h.data_offset)
    return parse_layout(head, file_size=h.file_size), head


def fuzz_gguf(seed_file: Path, workdir: Path, n: int, seed: int) -> Summary:
    lay, header = load_seed(seed_file)
    profiles = all_profiles()
    summary = Summary()
    path = workdir / "mutant.gguf"
    with bounded():
        for i in range(n):
            rng = random.Random(seed * 1_000_003 + i)
            name, mutant, data_size = gguf_mutant(lay, header, rng)
            write_mutant(path, mutant, data_size)
            summary.outcomes.append(_run("gguf", name, i, lambda: check_model(path, profiles)))
    return summary


def fuzz_profiles(seed_files: list[Path], workdir: Path, n: int, seed: int) -> Summary:
    texts = [p.read_text() for p in seed_files]
    summary = Summary()
    path = workdir / "mutant.toml"

    def work() -> bool:
        parse_profile(path)
        return False

    with bounded():
        for i in range(n):
            rng = random.Random(seed * 1_000_003 + i)
            name, data = profile_mutant(rng.choice(texts), rng)
            path.write_bytes(data)
            summary.outcomes.append(_run("profile", name, i, work))
    return summary
