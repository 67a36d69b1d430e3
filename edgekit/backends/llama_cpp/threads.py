"""How many threads llama.cpp should decode with, given what else runs on the machine.

llama.cpp's threads busy-wait at the barriers inside every graph (OpenMP or ggml's own pool), so
a decode with N threads runs at the pace of the slowest one. When another process holds one of
the cores, the thread that shares that core is descheduled for whole time slices while its
partners spin: measured here, 2 threads under one busy process fall to ~0.45x of 1 thread. So
edgekit decodes with as many threads as there are cores nobody else is using.

"Someone else" is measured, not guessed: CPU time of the whole system (steal included: a VM's
neighbours count) minus the CPU time of the decode threads themselves, over a short window. The
decode threads are this process's threads that are not other Python threads: the thread calling
llama_decode plus llama.cpp's workers. A dashboard's UI thread therefore counts as foreign load,
which is what it is to the decode.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import psutil

# Foreign load, in cores, that still leaves a core to us: background noise (a shell, a monitor
# sampling 4 times a second) is well under this; one busy process is ~1.0, or ~0.5 while it
# shares a core with a spinning decode thread.
SLACK_CORES = 0.25
# Shortest window worth measuring: /proc counts CPU time in 10 ms ticks.
MIN_WINDOW_S = 0.1
# How often a running generation re-checks the load (a load may start or stop mid-reply).
RECHECK_S = 0.5


def usable_cpus() -> int:
    """CPUs this process may run on (affinity, cgroup pinning), not the machine's total."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS has no affinity API
        return os.cpu_count() or 1


def choose_threads(n_cpus: int, foreign_cores: float, max_threads: int) -> int:
    """One thread per core that foreign work leaves free, at least 1, at most max_threads."""
    free = n_cpus - max(foreign_cores, 0.0)
    return max(1, min(max_threads, math.floor(free + SLACK_CORES)))


@dataclass(frozen=True)
class CpuSample:
    at: float  # monotonic seconds
    busy_s: float  # whole-system busy CPU seconds, all CPUs
    own_s: float  # CPU seconds of the decode threads


def _system_busy_s() -> float:
    t = psutil.cpu_times()
    idle = t.idle + getattr(t, "iowait", 0.0)
    # guest time is already inside user on Linux; steal is time a hypervisor gave to others.
    total = sum(v for k, v in t._asdict().items() if k not in {"guest", "guest_nice"})
    return float(total - idle)


def _decode_threads_s(proc: psutil.Process, decode_tid: int | None) -> float:
    """CPU seconds of this process minus its Python threads other than decode_tid.

    The process total keeps the time of threads that have exited (a dashboard decodes in a new
    worker thread each turn), which a sum over live threads would lose.
    """
    others = {t.native_id for t in threading.enumerate() if t.native_id is not None}
    others.discard(decode_tid)
    t = proc.cpu_times()
    python_s = sum(th.user_time + th.system_time for th in proc.threads() if th.id in others)
    return float(t.user + t.system - python_s)


def take_sample(proc: psutil.Process, decode_tid: int | None) -> CpuSample:
    return CpuSample(time.monotonic(), _system_busy_s(), _decode_threads_s(proc, decode_tid))


def foreign_cores(a: CpuSample, b: CpuSample) -> float:
    """Cores' worth of CPU used by anything but the decode threads between two samples."""
    wall = b.at - a.at
    if wall <= 0:
        return 0.0
    return max(0.0, ((b.busy_s - a.busy_s) - (b.own_s - a.own_s)) / wall)


Sampler = Callable[[int | None], CpuSample]


class ThreadGovernor:
    """Picks the decode thread count before each turn and re-checks it while decoding.

    With `fixed` set (a -t/--threads flag), it never measures and always answers that.
    """

    def __init__(
        self,
        max_threads: int,
        fixed: int | None = None,
        n_cpus: int | None = None,
        sampler: Sampler | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """sampler and clock: what tests replace to play a load history."""
        self.max_threads = max(1, max_threads)
        self.fixed = fixed
        self.n_cpus = n_cpus or usable_cpus()
        proc = psutil.Process()
        self._sample: Sampler = sampler or (lambda tid: take_sample(proc, tid))
        self._clock = clock
        self._last: CpuSample | None = None
        self.current = fixed or self.max_threads
        self.last_foreign = 0.0
        self.changes: list[tuple[float, int]] = []  # (foreign cores, new thread count)

    @property
    def auto(self) -> bool:
        return self.fixed is None

    def start(self) -> None:
        """Open a measurement window (at load: the load itself counts as our own work)."""
        if self.auto:
            self._last = self._sample(threading.get_native_id())

    def before_turn(self) -> int:
        """The thread count for the next generation, from the load since the last sample.

        Waits only when the last sample is younger than MIN_WINDOW_S (between chat turns the
        user's typing makes the window long enough for free).
        """
        if not self.auto:
            return self.current
        tid = threading.get_native_id()
        if self._last is None:
            self._last = self._sample(tid)
        wait = MIN_WINDOW_S - (self._clock() - self._last.at)
        if wait > 0:
            time.sleep(wait)
        return self._update(self._sample(tid))

    def during_turn(self) -> int | None:
        """A new thread count when the load changed since the last check, else None."""
        if not self.auto or self._last is None:
            return None
        if self._clock() - self._last.at < RECHECK_S:
            return None
        before = self.current
        after = self._update(self._sample(threading.get_native_id()))
        return after if after != before else None

    def _update(self, now: CpuSample) -> int:
        if self._last is not None:
            self.last_foreign = foreign_cores(self._last, now)
            chosen = choose_threads(self.n_cpus, self.last_foreign, self.max_threads)
            if chosen != self.current:
                self.changes.append((round(self.last_foreign, 2), chosen))
                self.current = chosen
        self._last = now
        return self.current
