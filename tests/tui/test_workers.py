"""The dashboard on two real loopback workers (tiny model): the workers panel shows the split,
marks a worker that dies, and the next turn ends with the worker's name instead of a hang."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from textual.widgets import Static

from edgekit.backends.base import SamplingParams
from edgekit.tui.app import DashboardApp, DashboardTarget
from tests.fixtures.dashboard import error_shown, submit, wait_until
from tests.fixtures.rpc import running_workers

GREEDY = SamplingParams(max_tokens=32, temperature=0.0, seed=1)


def panel_text(app: DashboardApp) -> str:
    return str(app.query_one("#workers-text", Static).content)


async def test_workers_panel_marks_a_dead_worker(tiny_model: Path) -> None:
    with running_workers(100, 300) as workers:
        rpc = ",".join(str(w.endpoint) for w in workers)
        app = DashboardApp(DashboardTarget(str(tiny_model), n_ctx=256, rpc=rpc), params=GREEDY)
        async with app.run_test(size=(100, 40)) as pilot:
            await wait_until(pilot, lambda: app.state == "ready")
            text = panel_text(app)
            assert f"{workers[0].endpoint}\n  layer 0" in text
            assert f"{workers[1].endpoint}\n  layer 1 + output" in text
            assert "not answering" not in text

            await submit(pilot, "hello")
            await wait_until(pilot, lambda: app.state == "ready")
            assert app.messages[-1]["role"] == "assistant"

            victim = workers[1]
            assert victim.process is not None
            os.kill(victim.process.pid, signal.SIGKILL)
            await wait_until(pilot, lambda: "not answering" in panel_text(app), timeout=30)
            assert panel_text(app).count("not answering") == 1

            await submit(pilot, "again")
            # Pushed is not yet composed: wait for the modal's text, not just the modal.
            await wait_until(pilot, lambda: error_shown(app), timeout=60)
            assert str(victim.endpoint) in str(app.screen.query_one("#error-text", Static).content)
            assert app.runtime is None and app.state == "no model"
