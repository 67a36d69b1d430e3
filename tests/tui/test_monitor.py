"""tui/monitor.py: the live metrics the dashboard shows, with a fake clock and memory source."""

from __future__ import annotations

import time

import pytest

from edgekit.backends.base import GenerationStats
from edgekit.tui.monitor import MemoryReading, Monitor, read_memory

MiB = 2**20


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def reading(rss_mib: int) -> MemoryReading:
    return MemoryReading(rss_mib * MiB, rss_mib * MiB, 4096 * MiB, 8192 * MiB, 0, 1024 * MiB)


def stats(decode: float = 20.0) -> GenerationStats:
    return GenerationStats(5, 64, 100.0, decode, 0.25, 3.5, 300 * MiB, "length")


def test_read_memory_reports_this_process_and_the_system() -> None:
    m = read_memory()
    assert 0 < m.rss_bytes <= m.peak_rss_bytes
    assert 0 < m.available_bytes <= m.total_bytes
    assert m.swap_used_bytes >= 0


def test_samples_fill_a_bounded_history() -> None:
    rss = iter(range(1, 100))
    monitor = Monitor(history=5, sample_memory=lambda: reading(next(rss)))
    for _ in range(8):
        monitor.sample()
    snap = monitor.snapshot()
    assert snap.memory == reading(8)
    assert snap.rss_history == tuple(n * MiB for n in range(4, 9))


def test_live_generation_counts_tokens_and_time_to_first_token() -> None:
    clock = FakeClock()
    monitor = Monitor(sample_memory=lambda: reading(1), clock=clock)
    monitor.begin_generation()
    clock.now += 0.5  # prompt processing
    for _ in range(11):
        monitor.token_arrived()
        clock.now += 0.1
    live = monitor.snapshot().live
    assert live is not None
    assert live.tokens == 11
    assert live.time_to_first_token_s == pytest.approx(0.5)
    assert live.decode_tokens_per_s == pytest.approx(10.0)  # 10 tokens after the first in 1 s


def test_decode_rate_history_uses_a_trailing_window_from_the_first_token() -> None:
    clock = FakeClock()
    monitor = Monitor(interval_s=0.25, sample_memory=lambda: reading(1), clock=clock)
    monitor.begin_generation()
    clock.now += 0.5
    monitor.sample()  # no token yet: no rate
    for _ in range(8):  # 20 tok/s: 5 tokens per quarter second
        for _ in range(5):
            monitor.token_arrived()
            clock.now += 0.05
        monitor.sample()
    rates = monitor.snapshot().decode_rate_history
    assert len(rates) == 8
    assert rates[-4:] == pytest.approx([20.0] * 4)


def test_end_generation_keeps_the_final_stats_or_what_a_stopped_one_reached() -> None:
    monitor = Monitor(sample_memory=lambda: reading(1))
    monitor.begin_generation()
    monitor.end_generation(stats(30.0))
    assert monitor.snapshot().stopped is None
    monitor.begin_generation()
    for _ in range(3):
        monitor.token_arrived()
    monitor.end_generation(None)
    snap = monitor.snapshot()
    assert snap.live is None
    assert snap.last == stats(30.0)
    assert snap.stopped is not None and snap.stopped.tokens == 3
    assert snap.generations == 1
    monitor.begin_generation()
    monitor.end_generation(stats(31.0))
    assert monitor.snapshot().stopped is None


def test_tokens_outside_a_generation_are_ignored() -> None:
    monitor = Monitor(sample_memory=lambda: reading(1))
    monitor.token_arrived("x")
    assert monitor.snapshot().live is None


def test_background_thread_samples_until_stopped() -> None:
    monitor = Monitor(interval_s=0.01)
    monitor.start()
    monitor.start()  # idempotent
    try:
        deadline = time.monotonic() + 5
        while len(monitor.snapshot().rss_history) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        monitor.stop()
    assert not monitor.running
    snap = monitor.snapshot()
    assert snap.memory is not None and snap.memory.rss_bytes > 0
    n = len(snap.rss_history)
    time.sleep(0.05)
    assert len(monitor.snapshot().rss_history) == n
