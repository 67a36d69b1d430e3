"""Live metrics for a running model: memory sampled in the background, token rates as they come.

Fronts (the dashboard) read one immutable `MonitorSnapshot` at their own pace; the generating
thread only bumps a counter per token. Sampling runs a few times a second on a daemon thread that
sleeps in between, so it costs a tiny fraction of a core and stays off the decode threads' way
(benchmarks/sampler_overhead.py checks it costs <= 2% of decode throughput).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import psutil

from edgekit.backends.base import GenerationStats, decode_rate
from edgekit.metrics import peak_rss_bytes
from edgekit.tui.ticker import Ticker

DEFAULT_INTERVAL_S = 0.25
DEFAULT_HISTORY = 240  # one minute at the default interval
# Token rates are taken over a trailing window: per tick, a few tokens arrive, and counting whole
# tokens over a quarter second would make the sparkline jump by 20-50% between ticks.
RATE_WINDOW_S = 1.0


@dataclass(frozen=True)
class MemoryReading:
    rss_bytes: int
    peak_rss_bytes: int
    available_bytes: int
    total_bytes: int
    swap_used_bytes: int
    swap_total_bytes: int


@dataclass(frozen=True)
class LiveGeneration:
    """A generation in progress, as far as the token callbacks have told."""

    tokens: int
    decode_tokens_per_s: float
    time_to_first_token_s: float | None
    elapsed_s: float


@dataclass(frozen=True)
class MonitorSnapshot:
    memory: MemoryReading | None
    rss_history: tuple[int, ...]
    decode_rate_history: tuple[float, ...]  # tok/s at each sample taken while generating
    live: LiveGeneration | None
    last: GenerationStats | None
    stopped: LiveGeneration | None  # the latest generation, when it ended without stats
    generations: int


# psutil.Process caches its handle; building one per sample would redo that work every time.
_PROCESS = psutil.Process()


def read_memory() -> MemoryReading:
    rss = int(_PROCESS.memory_info().rss)
    vm = psutil.virtual_memory()
    swap = psutil.swap_memory()
    return MemoryReading(
        rss_bytes=rss,
        peak_rss_bytes=max(rss, peak_rss_bytes()),
        available_bytes=int(vm.available),
        total_bytes=int(vm.total),
        swap_used_bytes=int(swap.used),
        swap_total_bytes=int(swap.total),
    )


class _TokenClock:
    """Token arrival times of the current generation; guarded by the Monitor's lock."""

    def __init__(self, now: float) -> None:
        self.started_at = now
        self.first_at: float | None = None
        self.last_at = now
        self.count = 0
        self.ticks: deque[tuple[float, int]] = deque([(now, 0)])  # (time, count) in the window

    def live(self, now: float) -> LiveGeneration:
        ttft = None if self.first_at is None else self.first_at - self.started_at
        rate = decode_rate(self.count, self.first_at, self.last_at)
        return LiveGeneration(self.count, rate, ttft, now - self.started_at)

    def window_rate(self, now: float) -> float | None:
        """Tokens per second over the trailing window, not counting the wait for the first one."""
        self.ticks.append((now, self.count))
        while len(self.ticks) > 2 and now - self.ticks[1][0] >= RATE_WINDOW_S:
            self.ticks.popleft()
        if self.first_at is None:
            return None
        then, count_then = self.ticks[0]
        start = max(then, self.first_at)
        return (self.count - count_then) / (now - start) if now > start else None


class Monitor:
    """Samples memory every `interval_s` on a background thread and tracks token rates."""

    def __init__(
        self,
        interval_s: float = DEFAULT_INTERVAL_S,
        history: int = DEFAULT_HISTORY,
        sample_memory: Callable[[], MemoryReading] = read_memory,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._sample_memory = sample_memory
        self._clock = clock
        self._lock = threading.Lock()
        self._memory: MemoryReading | None = None
        self._rss: deque[int] = deque(maxlen=history)
        self._rates: deque[float] = deque(maxlen=history)
        self._tokens: _TokenClock | None = None
        self._last: GenerationStats | None = None
        self._stopped: LiveGeneration | None = None
        self._generations = 0
        self._ticker = Ticker(self.sample, interval_s, "edgekit-monitor")

    def start(self) -> None:
        self._ticker.start()

    def stop(self) -> None:
        self._ticker.stop()

    @property
    def running(self) -> bool:
        return self._ticker.running

    def sample(self) -> None:
        """Take one memory reading and close the current token-rate interval."""
        reading = self._sample_memory()
        now = self._clock()
        with self._lock:
            self._memory = reading
            self._rss.append(reading.rss_bytes)
            if self._tokens is not None:
                rate = self._tokens.window_rate(now)
                if rate is not None:
                    self._rates.append(rate)

    def begin_generation(self) -> None:
        with self._lock:
            self._tokens = _TokenClock(self._clock())

    def token_arrived(self, _piece: str = "") -> None:
        """Count one generated token; shaped to be passed as (or called from) `on_token`."""
        now = self._clock()
        with self._lock:
            clock = self._tokens
            if clock is not None:
                clock.first_at = clock.first_at or now
                clock.last_at = now
                clock.count += 1

    def end_generation(self, stats: GenerationStats | None) -> None:
        """Close the current generation; `stats` is None when it was stopped or failed."""
        now = self._clock()
        with self._lock:
            tokens, self._tokens = self._tokens, None
            if stats is not None:
                self._last, self._stopped = stats, None
                self._generations += 1
            elif tokens is not None:
                self._stopped = tokens.live(now)

    def snapshot(self) -> MonitorSnapshot:
        now = self._clock()
        with self._lock:
            return MonitorSnapshot(
                memory=self._memory,
                rss_history=tuple(self._rss),
                decode_rate_history=tuple(self._rates),
                live=self._tokens.live(now) if self._tokens is not None else None,
                last=self._last,
                stopped=self._stopped,
                generations=self._generations,
            )
