"""The dashboard driven by Textual's pilot: a real load and generation on a tiny model, errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console
from textual.pilot import Pilot
from textual.widgets import DataTable, Static

from edgekit.backends.base import SamplingParams
from edgekit.cli import render
from edgekit.devices.profiles import usable_cpus
from edgekit.errors import EdgekitError, ModelNotFoundError
from edgekit.tui.app import DashboardApp, DashboardTarget
from edgekit.tui.bias import NOT_SCORED
from edgekit.tui.messages import GenerationDone, GenerationStopped
from edgekit.tui.screens import ErrorScreen, SwitchModelScreen, error_text
from edgekit.tui.widgets import Transcript
from tests.fixtures.dashboard import error_shown, submit, wait_until

GREEDY = SamplingParams(max_tokens=48, temperature=0.0, seed=1)


def text_of(app: DashboardApp, selector: str) -> str:
    return str(app.query_one(selector, Static).content)


async def test_generation_updates_every_panel(tiny_model: Path) -> None:
    app = DashboardApp(DashboardTarget(str(tiny_model)), params=GREEDY)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: app.state == "ready")
        assert "tiny-llama · cpu · ready" in app.sub_title
        assert app.plan is not None
        table = app.query_one("#types", DataTable)
        assert table.row_count == len(app.plan.info.types)
        assert "F32" in str(table.get_row("F32"))
        assert "ctx 512" in text_of(app, "#device-text")
        await wait_until(pilot, lambda: NOT_SCORED in text_of(app, "#bias-text"))
        assert "guard: off" in text_of(app, "#bias-text")

        await submit(pilot, "the river")
        await wait_until(pilot, lambda: app.monitor.snapshot().generations == 1)
        await wait_until(pilot, lambda: app.state == "ready")
        await pilot.pause(0.3)  # one metrics refresh

        last = app.monitor.snapshot().last
        assert last is not None and last.decode_tokens_per_s > 0
        speed = text_of(app, "#speed-text")
        assert f"decode {last.decode_tokens_per_s:,.1f} tok/s" in speed
        assert "RSS" in text_of(app, "#memory-text")
        memory = app.monitor.snapshot().memory
        assert memory is not None and memory.rss_bytes > 0
        assert app.query_one(Transcript).reply_text
        assert [m["role"] for m in app.messages] == ["user", "assistant"]

        await pilot.press("ctrl+n")
        assert app.messages == []
        assert not app.query_one(Transcript).children


async def test_a_missing_model_shows_the_cli_error_as_a_modal(tmp_path: Path) -> None:
    missing = tmp_path / "nope.gguf"
    app = DashboardApp(DashboardTarget(str(missing)))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: error_shown(app))
        shown = str(app.screen.query_one("#error-text", Static).content)
        assert shown == f"model file not found: {missing}\nCheck the path."
        assert shown in cli_error_text(
            ModelNotFoundError(f"model file not found: {missing}", "Check the path.")
        )
        await pilot.press("enter")
        assert not isinstance(app.screen, ErrorScreen)
        assert app.state == "no model"


async def test_an_unknown_device_shows_a_modal(tiny_model: Path) -> None:
    app = DashboardApp(DashboardTarget(str(tiny_model), "toaster"))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: error_shown(app))
        assert "unknown device 'toaster'" in str(
            app.screen.query_one("#error-text", Static).content
        )


def cli_error_text(error: EdgekitError) -> str:
    """What `edgekit run` prints for this error, without the panel's border."""
    console = Console(width=400, color_system=None)
    original, render.err_console = render.err_console, console
    try:
        with console.capture() as captured:
            render.render_error(error)
    finally:
        render.err_console = original
    lines = captured.get().splitlines()[1:-1]
    return "\n".join(line.strip("│ ") for line in lines)


def test_the_modal_words_errors_as_the_cli_does() -> None:
    error = EdgekitError("the prompt is empty", hint="Pass some text with -p.")
    assert error_text(error).plain == cli_error_text(error)
    assert error_text(EdgekitError("no hint")).plain == cli_error_text(EdgekitError("no hint"))


async def test_a_stopped_generation_keeps_its_partial_reply(tiny_model: Path) -> None:
    app = DashboardApp(DashboardTarget(str(tiny_model)), autoload=False, live_metrics=False)
    async with app.run_test(size=(80, 24)) as pilot:
        app.messages.append({"role": "user", "content": "the river"})
        app.query_one(Transcript).add_prompt("the river")
        app.on_token("north ")
        app.action_stop()
        with pytest.raises(GenerationStopped):
            app.on_token("south")
        app.post_message(GenerationDone(None, None))
        await pilot.pause()
        assert app.messages[-1] == {"role": "assistant", "content": "north"}
        notes = app.query_one(Transcript).query(".note")
        assert [str(n.content) for n in notes.results(Static)] == ["(stopped)"]
        assert app.state == "ready"


async def test_bias_suite_action_is_shown_but_unavailable(tiny_model: Path) -> None:
    app = DashboardApp(DashboardTarget(str(tiny_model)), autoload=False, live_metrics=False)
    async with app.run_test(size=(80, 24)):
        assert app.check_action("toggle_bias_guard", ()) is True
        assert app.check_action("run_bias_suite", ()) is None
        assert app.check_action("stop", ()) is False  # nothing to stop


async def test_switch_model_loads_the_new_one(tiny_model: Path, tiny_q8_model: Path) -> None:
    app = DashboardApp(DashboardTarget(str(tiny_model)), params=GREEDY)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: app.state == "ready")
        await pilot.press("ctrl+o")
        assert isinstance(app.screen, SwitchModelScreen)
        path_input = app.screen.query_one("#switch-path")
        path_input.value = str(tiny_q8_model)  # type: ignore[attr-defined]
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.state == "ready" and app.runtime is not None)
        assert app.plan is not None and app.plan.info.path == tiny_q8_model
        assert app.query_one("#types", DataTable).get_row("Q8_0")[0] == "Q8_0"


async def test_bias_guard_toggles_on_and_off(tiny4_model: Path) -> None:
    app = DashboardApp(DashboardTarget(str(tiny4_model)), params=GREEDY)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: app.state == "ready")
        await pilot.press("ctrl+g")
        await wait_until(pilot, lambda: "guard: on" in text_of(app, "#bias-text"))
        await submit(pilot, "the river")
        await wait_until(pilot, lambda: app.monitor.snapshot().generations == 1)
        await wait_until(pilot, lambda: app.state == "ready")
        await pilot.press("ctrl+g")
        await wait_until(pilot, lambda: "guard: off" in text_of(app, "#bias-text"))


def test_bias_panel_shows_stored_scores() -> None:
    from edgekit.tui.bias import bias_text

    latest: dict[str, object] = {"bias": 0.124, "device": "rpi5"}
    summary = {
        "latest": latest,
        "history": {
            "overall": [{"bias": 0.2}, {"bias": 0.124}],
            "gender": [{"bias": 0.3}, {"bias": 0.171}],
        },
    }
    text = str(bias_text(summary, "off"))
    assert "overall 0.124" in text and "2 runs, rpi5" in text and "gender" in text
    assert "0.30 0.17" in text and "edgekit suite" in text
    latest["suite"] = "bbq"
    assert "BBQ;" in str(bias_text(summary, "off"))


def test_bias_panel_says_the_history_is_corrupt(tiny_model: Path, isolated_data: Path) -> None:
    from edgekit.bias.store import default_db_path
    from edgekit.tui.bias import bias_summary, bias_text

    isolated_data.mkdir()
    default_db_path().write_bytes(b"\x00garbage" * 100)
    from edgekit.backends.runner import plan_run

    summary = bias_summary(plan_run(tiny_model, "cpu", 256))
    assert "corrupt" in summary
    text = str(bias_text(summary, "off"))
    assert "history is corrupt" in text and "Not scored" not in text
    assert default_db_path().read_bytes() == b"\x00garbage" * 100


async def chat_turn(pilot: Pilot[None], app: DashboardApp, text: str) -> None:
    """Send one message and wait for its reply (or the error it ended in)."""
    before = app.monitor.snapshot().generations
    await submit(pilot, text)
    await wait_until(pilot, lambda: app.monitor.snapshot().generations > before or error_shown(app))
    await wait_until(pilot, lambda: app.state == "ready" or error_shown(app))


async def test_a_long_chat_drops_its_oldest_turns_instead_of_failing(tiny_model: Path) -> None:
    target = DashboardTarget(str(tiny_model), n_ctx=256)
    app = DashboardApp(target, params=GREEDY, live_metrics=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: app.state == "ready")
        for turn in range(4):
            await chat_turn(pilot, app, f"turn {turn}: " + "the river city " * 2)
            assert not error_shown(app), str(app.screen.query_one("#error-text", Static).content)
        users = [m["content"] for m in app.messages if m["role"] == "user"]
        assert users[-1].startswith("turn 3") and not users[0].startswith("turn 0")
        assert app.messages[-1]["role"] == "assistant"


async def test_threads_above_the_cpu_count_are_clamped_with_a_note(tiny_model: Path) -> None:
    cpus = usable_cpus()
    target = DashboardTarget(str(tiny_model), threads=cpus * 64)
    app = DashboardApp(target, live_metrics=False)
    notes: list[str] = []

    def notify(message: str, **_: object) -> None:
        notes.append(message)

    app.notify = notify  # type: ignore[method-assign]
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: app.state == "ready")
        assert app.plan is not None and app.plan.threads == cpus
        assert any(f"-t {cpus * 64}" in n for n in notes), notes
