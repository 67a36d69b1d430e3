"""`edgekit dashboard --attach`: the panels fed by a real llama-server on loopback (tiny model,
edgekit's erasure adapter, the served guard moving its scale), driven by Textual's pilot."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Static

from edgekit.bias.controller import adapter_path
from edgekit.bias.store import model_fingerprint
from edgekit.serving.exchange import Exchange
from edgekit.serving.guard import guard_server_args, start_guard
from edgekit.tui.app import DashboardApp
from edgekit.tui.attach import ServerMemory, ServerWatcher, SlotTracker, parse_metrics
from tests.fixtures.lora_server import http, running_llama_server, write_erasure_adapter
from tests.fixtures.tiny_models import write_tiny_llama

KEY = "attach-key"
CHAT = "/v1/chat/completions"
BODY = {"messages": [{"role": "user", "content": "the river"}], "max_tokens": 12, "seed": 1}


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_llama(
        tmp_path_factory.mktemp("attach") / "tiny-attach.gguf", n_layers=4, seed=9
    )


@pytest.fixture(scope="module")
def adapter(model: Path) -> Path:
    return write_erasure_adapter(model, adapter_path(model_fingerprint(model)), scale=1.0)


@pytest.fixture(scope="module")
def server(model: Path, adapter: Path) -> Iterator[tuple[str, int]]:
    with running_llama_server(model, guard_server_args(adapter), KEY, parallel=2) as (url, proc):
        yield url, proc.pid


async def wait_until(
    pilot: Pilot[None], condition: Callable[[], bool], timeout: float = 60
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for the dashboard"
        await pilot.pause(0.05)


def text_of(app: DashboardApp, selector: str) -> str:
    return str(app.query_one(selector, Static).content)


def shows(app: DashboardApp, selector: str, text: str) -> Callable[[], bool]:
    return lambda: text in text_of(app, selector)


def test_llama_servers_metrics_parse(server: tuple[str, int]) -> None:
    url, _ = server
    metrics = parse_metrics(http(url + "/metrics", api_key=KEY))
    for name in ("tokens_predicted_total", "prompt_seconds_total", "requests_processing"):
        assert name in metrics
    assert parse_metrics('# HELP x y\nllamacpp:a{slot="0"} 2.5\nbad line\n') == {"a": 2.5}


def test_a_wrong_key_and_a_remote_server_are_said_as_such(server: tuple[str, int]) -> None:
    url, _ = server
    snap = ServerWatcher(url, "wrong").poll()
    assert snap.error is not None and "401" in snap.error
    remote = ServerMemory("http://192.0.2.7:8080")  # TEST-NET: never this machine
    assert remote.read() is None and "another machine" in remote.note


def test_slots_count_a_request_once_whether_seen_busy_or_only_finished() -> None:
    tracker = SlotTracker()

    def slot(task: int | None, busy: bool, decoded: int) -> dict[str, object]:
        return {
            "id": 0,
            "id_task": task,
            "is_processing": busy,
            "next_token": [{"n_decoded": decoded}],
        }

    assert tracker.update([slot(None, False, 0)], 0.5)[0].tokens_per_s == 0.0
    assert tracker.update([slot(4, True, 10)], 0.5)[0].tokens_per_s == 20.0
    tracker.update([slot(4, False, 12)], 0.5)
    tracker.update([slot(4, False, 12)], 0.5)  # still the same finished task
    tracker.update([slot(9, False, 3)], 0.5)  # a whole request between two polls
    tracker.update([slot(11, True, 1)], 0.5)
    assert tracker.done == 2
    tracker.update([slot(12, True, 1)], 0.5)  # 11 was replaced while busy: done
    assert tracker.done == 3


async def test_the_attached_dashboard_shows_the_server_live(
    server: tuple[str, int], model: Path, adapter: Path
) -> None:
    url, pid = server
    watcher = ServerWatcher(url, KEY, interval_s=0.1)
    app = DashboardApp(attach=watcher)
    async with app.run_test(size=(80, 30)) as pilot:
        await wait_until(pilot, lambda: " done" in text_of(app, "#server-text"), timeout=30)
        assert not app.query("#prompt")  # the chat is the clients'
        start = watcher.snapshot()
        done0, tokens = start.done, start.generated_tokens
        for i in range(1, 4):
            reply = await asyncio.to_thread(http, url + CHAT, BODY, KEY)
            tokens += reply["usage"]["completion_tokens"]
            await wait_until(pilot, shows(app, "#server-text", f"{done0 + i} done"), timeout=30)
        snap = watcher.snapshot()
        assert snap.error is None and snap.in_flight == 0
        assert snap.generated_tokens == tokens
        assert len(snap.slots) == 2 and not any(s.processing for s in snap.slots)
        await wait_until(pilot, shows(app, "#server-text", "slot 1 ○ idle"))  # a line per slot
        assert app.check_action("toggle_bias_guard", ()) is False  # the server's model, not ours
        assert snap.ttft_s is not None and snap.ttft_s >= 0
        await wait_until(pilot, lambda: f"{tokens:,} tok out" in text_of(app, "#speed-text"))
        # The memory is llama-server's own, found by the port it listens on.
        assert watcher.memory.process is not None and watcher.memory.process.pid == pid
        assert "RSS" in text_of(app, "#memory-text")
        # The guard moves the scale; the panel shows it and the scores it wrote to the history.
        await wait_until(pilot, lambda: "adapter scale 1.00" in text_of(app, "#bias-text"))
        guard = start_guard(model, str(adapter), url, KEY)
        try:
            guard.observe(Exchange(CHAT, BODY, "The river runs past the city.", 200))
            assert await asyncio.to_thread(guard.drain, 30)
        finally:
            guard.close()
        await wait_until(
            pilot, lambda: "adapter scale 0.85 · scored 0.00" in text_of(app, "#bias-text")
        )
        assert "attached" in app.sub_title
