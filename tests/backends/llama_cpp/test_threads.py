"""Thread choice under load: the pure rule, the governor's bookkeeping, and the load reading."""

from __future__ import annotations

import threading
import time

import pytest

from edgekit.backends.llama_cpp import threads as th
from edgekit.backends.llama_cpp.threads import CpuSample, ThreadGovernor, choose_threads


@pytest.mark.parametrize(
    ("cpus", "foreign", "most", "expected"),
    [
        (2, 0.0, 2, 2),  # quiet: every core
        (2, 0.1, 2, 2),  # background noise keeps both
        (2, 0.5, 2, 1),  # a busy process sharing a core with a spinning thread
        (2, 1.0, 2, 1),  # one busy process
        (2, 2.0, 2, 1),  # never below one
        (4, 1.0, 4, 3),  # a Pi 4 with a browser on one core
        (4, 0.0, 2, 2),  # the profile's maximum caps it
        (8, -0.5, 4, 4),  # a negative reading (counter jitter) is no load
    ],
)
def test_one_thread_per_free_core(cpus: int, foreign: float, most: int, expected: int) -> None:
    assert choose_threads(cpus, foreign, most) == expected


class FakeClock:
    """Samples where the system is busy `foreign` cores beyond what the decode threads use."""

    def __init__(self, foreign: float) -> None:
        self.foreign = foreign
        self.t = time.monotonic() - 10.0
        self.busy = 0.0
        self.own = 0.0

    def __call__(self, _tid: int | None) -> CpuSample:
        return CpuSample(self.t, self.busy, self.own)

    def now(self) -> float:
        return self.t

    def advance(self, seconds: float, own_cores: float) -> None:
        self.t += seconds
        self.own += own_cores * seconds
        self.busy += (own_cores + self.foreign) * seconds


def test_governor_follows_the_load_between_turns() -> None:
    clock = FakeClock(foreign=0.0)
    gov = ThreadGovernor(2, n_cpus=2, sampler=clock, clock=clock.now)
    gov.start()
    clock.advance(1.0, own_cores=1.0)  # loading the model: our own work is not foreign
    assert gov.before_turn() == 2
    clock.foreign = 1.0
    clock.advance(5.0, own_cores=0.0)  # the user types while something else runs
    assert gov.before_turn() == 1
    assert gov.last_foreign == pytest.approx(1.0)
    clock.foreign = 0.0
    clock.advance(5.0, own_cores=0.0)
    assert gov.before_turn() == 2
    assert [n for _, n in gov.changes] == [1, 2]


def test_governor_rechecks_while_decoding_but_not_every_token() -> None:
    clock = FakeClock(foreign=0.0)
    gov = ThreadGovernor(2, n_cpus=2, sampler=clock, clock=clock.now)
    gov.start()
    clock.advance(1.0, own_cores=2.0)
    assert gov.before_turn() == 2
    clock.foreign = 0.6  # a process starts mid-reply, sharing a core with a decode thread
    clock.advance(th.RECHECK_S / 10, own_cores=1.4)
    assert gov.during_turn() is None  # too soon to re-measure
    clock.advance(th.RECHECK_S, own_cores=1.4)
    assert gov.during_turn() == 1
    clock.advance(th.RECHECK_S, own_cores=1.0)
    assert gov.during_turn() is None  # unchanged: nothing to do


def test_a_fixed_count_never_measures() -> None:
    def explode(_tid: int | None) -> CpuSample:
        raise AssertionError("a fixed thread count must not measure")

    gov = ThreadGovernor(4, fixed=3, n_cpus=8, sampler=explode)
    gov.start()
    assert gov.before_turn() == 3 and gov.during_turn() is None and not gov.auto


def test_before_turn_waits_for_a_minimal_window() -> None:
    gov = ThreadGovernor(2, n_cpus=2)
    gov.start()
    start = time.monotonic()
    gov.before_turn()
    assert time.monotonic() - start >= th.MIN_WINDOW_S * 0.9


def test_a_busy_python_thread_counts_as_foreign_load() -> None:
    """A UI thread spinning in this process competes with the decode: the reading shows it."""
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            sum(range(1000))

    worker = threading.Thread(target=spin, daemon=True)
    worker.start()
    try:
        gov = ThreadGovernor(th.usable_cpus(), n_cpus=th.usable_cpus())
        gov.start()
        time.sleep(0.5)
        gov.before_turn()
    finally:
        stop.set()
        worker.join()
    # The spinning thread holds the GIL most of the time, so it shows as (nearly) a core.
    assert gov.last_foreign >= 0.5
