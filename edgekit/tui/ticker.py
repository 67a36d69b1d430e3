"""A function run once at start and then every `interval_s` on a daemon thread: the dashboard's
two pollers (this process's memory, a served model's endpoints) share it."""

from __future__ import annotations

import threading
from collections.abc import Callable


class Ticker:
    def __init__(self, tick: Callable[[], object], interval_s: float, name: str) -> None:
        self.tick = tick
        self.interval_s = interval_s
        self.name = name
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stop.set()
            thread.join()

    def _run(self) -> None:
        self.tick()  # a first reading right away, so a front has numbers before the first tick
        while not self._stop.wait(self.interval_s):
            self.tick()
