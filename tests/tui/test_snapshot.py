"""The dashboard at 80x24, fed fixed numbers so the picture does not depend on the machine."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from textual.pilot import Pilot

from edgekit.backends.base import GenerationStats
from edgekit.backends.runner import RunPlan
from edgekit.devices.memory import estimate_memory
from edgekit.devices.profiles import load_profile
from edgekit.gguf.reader import load_model_info
from edgekit.tui.app import DashboardApp, DashboardTarget
from edgekit.tui.monitor import MemoryReading, Monitor
from edgekit.tui.widgets import Transcript

MiB = 2**20
REPLY = "small fast model memory device token river music house water light north south"


def fixed_memory() -> Callable[[], MemoryReading]:
    def readings() -> Iterator[MemoryReading]:
        rss = 60
        while True:
            rss = min(rss + 4, 96)
            yield MemoryReading(rss * MiB, 96 * MiB, 2900 * MiB, 3800 * MiB, 12 * MiB, 100 * MiB)

    return readings().__next__


def fed_monitor() -> Monitor:
    """A monitor that went through one generation at 30-50 tok/s, on a fake clock."""
    now = [0.0]
    monitor = Monitor(sample_memory=fixed_memory(), clock=lambda: now[0])
    monitor.begin_generation()
    now[0] += 0.2
    for i in range(32):
        for _ in range(10):
            monitor.token_arrived()
            now[0] += 0.02 + 0.002 * (i % 6)
        monitor.sample()
    monitor.end_generation(GenerationStats(7, 256, 310.0, 41.5, 0.21, 6.4, 96 * MiB, "length"))
    return monitor


def fixed_plan(model: Path) -> RunPlan:
    info = load_model_info(model)
    profile = load_profile("rpi4")  # a fixed budget and thread count, unlike the detected "cpu"
    return RunPlan(info, profile, 512, estimate_memory(info, profile, 512, process_bytes=50 * MiB))


def test_dashboard_at_80x24(snap_compare: Any, tiny_q8_model: Path, user_config: Path) -> None:
    app = DashboardApp(
        DashboardTarget(str(tiny_q8_model), "rpi4"),
        monitor=fed_monitor(),
        live_metrics=False,
        autoload=False,
    )

    async def feed(pilot: Pilot[None]) -> None:
        app.show_plan(fixed_plan(tiny_q8_model))
        app.set_state("ready")
        transcript = app.query_one(Transcript)
        transcript.add_prompt("Name some things a small computer can do.")
        transcript.append_reply(REPLY)
        app.refresh_metrics()
        await pilot.pause()

    assert snap_compare(app, terminal_size=(80, 24), run_before=feed)
