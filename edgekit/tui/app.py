"""`edgekit dashboard`: chat with a model while its memory, speed and precision stay in view.

A front over the core, like the CLI: the model goes through runner.plan_run/open_runtime, the
numbers come from tui/monitor.py and the run plan. Loading and generating run in thread workers;
tokens reach the screen through a queue drained a few times a second, so the decode threads never
wait on rendering.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.css.query import NoMatches
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Footer, Header, Input

from edgekit.backends.base import GenerationResult, Runtime, SamplingParams
from edgekit.backends.conversation import drop_oldest_turn, fit_history
from edgekit.backends.llama_cpp.rpc.pool import open_pool, plan_pool
from edgekit.backends.llama_cpp.rpc.protocol import WorkerLostError, responds
from edgekit.backends.llama_cpp.rpc.runtime import RpcRuntime
from edgekit.backends.runner import RunPlan, clamp_threads, open_runtime, plan_run
from edgekit.errors import EdgekitError
from edgekit.tui import attach
from edgekit.tui.attach import ServerSnapshot, ServerWatcher
from edgekit.tui.bias import BiasPanel, bias_summary
from edgekit.tui.messages import (
    BiasScores,
    GenerationDone,
    GenerationStopped,
    ModelFailed,
    ModelLoaded,
    Note,
    PlanReady,
)
from edgekit.tui.monitor import Monitor
from edgekit.tui.screens import ErrorScreen, SwitchModelScreen
from edgekit.tui.widgets import (
    DevicePanel,
    MemoryPanel,
    PrecisionPanel,
    ServerPanel,
    SpeedPanel,
    Transcript,
)
from edgekit.tui.workers import PoolReady, WorkersAlive, WorkersPanel

# One UI tick both shows the new tokens and refreshes the panels: each tick renders on the UI
# thread, which holds the GIL the generating thread needs between llama.cpp calls.
UI_TICK_S = 0.25
# Actions that wait for features the core does not have yet: shown greyed out in the footer.
# Running the whole suite takes minutes on a Pi: that stays with `edgekit bias`.
UNAVAILABLE = frozenset({"run_bias_suite"})
WORKER_CHECK_S = 1.0


PanelT = TypeVar("PanelT", bound=Widget)


@dataclass(frozen=True)
class DashboardTarget:
    """The model the dashboard loads and where: a device profile, the context (None: the
    profile's), a fixed decode thread count (None follows the load, the UI's own included) and
    the RPC workers that hold layers (None: none)."""

    model: str | None = None
    device: str = "cpu"
    n_ctx: int | None = None
    threads: int | None = None
    rpc: str | None = None


class DashboardApp(App[None]):
    CSS_PATH = "dashboard.tcss"
    TITLE = "edgekit"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+n", "new_prompt", "New prompt"),
        Binding("escape", "stop", "Stop"),
        Binding("ctrl+g", "toggle_bias_guard", "Bias guard"),
        Binding("ctrl+o", "switch_model", "Model"),
        Binding("ctrl+q", "quit", "Quit", priority=True),
    ]

    def __init__(
        self,
        target: DashboardTarget = DashboardTarget(),
        params: SamplingParams | None = None,
        monitor: Monitor | None = None,
        live_metrics: bool = True,
        autoload: bool = True,
        attach: ServerWatcher | None = None,
    ) -> None:
        """`live_metrics=False` and `autoload=False` let tests feed fixed data instead.

        attach: watch a running server (`--attach`) instead of loading a model here.
        """
        super().__init__()
        self.model, self.device, self.n_ctx = target.model, target.device, target.n_ctx
        self.threads = target.threads
        self.params = params or SamplingParams()
        self.monitor = monitor or Monitor()
        self.live_metrics, self.autoload = live_metrics, autoload
        self.plan: RunPlan | None = None
        self.runtime: Runtime | None = None
        self.bias_summary: dict[str, Any] = {}
        self.state = "starting"
        self.messages: list[dict[str, str]] = []
        self.pending: deque[str] = deque()
        self.stop_requested = threading.Event()
        self.rpc = target.rpc  # RPC workers: edgekit.tui.workers shows them
        self.attached = attach
        if attach is not None:
            self.autoload = False

    def compose(self) -> ComposeResult:
        yield Header(icon="◆")
        with Vertical(id="chat"):
            yield Transcript(id="transcript")
            if self.attached is None:
                yield Input(placeholder="Prompt, then Enter", id="prompt")
        if self.attached is not None:
            with Vertical(id="panels"):
                yield MemoryPanel()
                yield SpeedPanel()
                yield ServerPanel()
                yield BiasPanel()
            yield Footer(show_command_palette=False)
            return
        with Vertical(id="panels"):
            yield MemoryPanel()
            yield SpeedPanel()
            yield DevicePanel()
            if self.rpc:
                yield WorkersPanel()
            yield PrecisionPanel()
            yield BiasPanel()
        yield Footer(show_command_palette=False)

    def on_mount(self) -> None:
        if self.attached is not None:
            self.attach_to(self.attached)
            return
        if self.live_metrics:
            self.monitor.start()
        self.set_interval(UI_TICK_S, self.tick)
        if self.rpc:
            self.set_interval(WORKER_CHECK_S, self.check_workers)
        self.refresh_metrics()
        self.query_one("#prompt", Input).focus()
        if self.autoload:
            self.set_state("loading")
            self.load_model(self.model, self.device, self.n_ctx, None)

    def on_unmount(self) -> None:
        self.stop_requested.set()
        self.monitor.stop()
        if self.attached is not None:
            self.attached.stop()

    def attach_to(self, watcher: ServerWatcher) -> None:
        if self.live_metrics:
            watcher.start()
        self.set_interval(UI_TICK_S, self.refresh_metrics)
        self.query_one(Transcript).add_note(
            f"attached to {watcher.client.url}: its clients' requests show in the panels"
        )
        self.set_state("attached")

    # What the screen shows; tests call these directly with fixed data.

    def set_state(self, state: str) -> None:
        self.state = state
        name = self.plan.info.name if self.plan else (self.model or "default model")
        if self.attached is not None:
            name = self.attached.client.url
        self.sub_title = f"{name} · {self.device} · {state}"
        self.refresh_bindings()

    def show_plan(self, plan: RunPlan) -> None:
        self.plan = plan
        self.query_one(DevicePanel).show(plan)
        self.query_one(PrecisionPanel).show(plan.info)
        self.set_state(self.state)

    def main_panel(self, kind: type[PanelT]) -> PanelT | None:
        """A panel of the main screen, whichever screen is on top (an error modal, say), or None
        while the app is being torn down: timers and worker messages still arrive then."""
        try:
            return self.screen_stack[0].query_one(kind)
        except (NoMatches, IndexError):
            return None

    def refresh_metrics(self) -> None:
        if self.attached is not None:
            self.show_server(self.attached.snapshot())
            return
        snapshot = self.monitor.snapshot()
        # The timer can fire while a panel is mounted but its children are not yet composed (a
        # loaded machine) or already removed (teardown): that refresh is skipped, the next one
        # comes a quarter second later.
        with contextlib.suppress(NoMatches):
            if (memory := self.main_panel(MemoryPanel)) is not None:
                memory.show(snapshot)
            if (speed := self.main_panel(SpeedPanel)) is not None:
                speed.show(snapshot)

    def show_server(self, snap: ServerSnapshot) -> None:
        with contextlib.suppress(NoMatches):
            if (memory := self.main_panel(MemoryPanel)) is not None:
                memory.show_reading(snap.memory, snap.rss_history, snap.memory_note)
            if (speed := self.main_panel(SpeedPanel)) is not None:
                speed.show_rates(attach.speed_text(snap), snap.rate_history)
            if (server := self.main_panel(ServerPanel)) is not None:
                server.show(attach.requests_text(snap))
            if (bias := self.main_panel(BiasPanel)) is not None:
                bias.show(snap.bias, attach.guard_label(snap))

    def tick(self) -> None:
        self.flush_tokens()
        self.refresh_metrics()

    def flush_tokens(self) -> None:
        pieces = []
        while self.pending:
            pieces.append(self.pending.popleft())
        if pieces:
            self.query_one(Transcript).append_reply("".join(pieces))

    def show_error(self, error: EdgekitError) -> None:
        self.push_screen(ErrorScreen(error))

    # Model loading. Workers report back with messages: unlike call_from_thread, posting never
    # blocks, so a worker finishing while the app shuts down cannot hang on a stopped loop.

    def post_from_worker(self, message: Message) -> None:
        # A closed event loop raises: nobody is left to tell, and that is fine.
        with contextlib.suppress(RuntimeError):
            self.post_message(message)

    @work(thread=True, exclusive=True, group="model")
    def load_model(
        self,
        model: str | None,
        device: str,
        n_ctx: int | None,
        previous: Runtime | None,
    ) -> None:
        try:
            pool = plan_pool(model, device, n_ctx, self.rpc) if self.rpc else None
            if pool:
                plan = pool.run
                self.post_from_worker(PoolReady(pool))
            else:
                plan, note = clamp_threads(plan_run(model, device, n_ctx, threads=self.threads))
                if note:
                    self.post_from_worker(Note(note))
            self.post_from_worker(PlanReady(plan))
            # A message, not call_from_thread: that blocks, and would hang a quit mid-load.
            self.post_from_worker(BiasScores(bias_summary(plan)))
            if previous is not None:
                previous.close()  # before the new one loads, so both never share the memory
                previous = None
            runtime = open_pool(pool) if pool else open_runtime(plan)
        except EdgekitError as e:
            self.post_from_worker(ModelFailed(e, previous))
            return
        self.post_from_worker(ModelLoaded(runtime))

    def on_note(self, message: Note) -> None:
        self.notify(message.text)

    def on_plan_ready(self, message: PlanReady) -> None:
        self.show_plan(message.plan)

    def on_bias_scores(self, message: BiasScores) -> None:
        self.show_bias(message.summary)

    def on_model_loaded(self, message: ModelLoaded) -> None:
        self.runtime = message.runtime
        self.refresh_bias()
        for note in message.runtime.notes:  # what `edgekit run` prints as "note: ..."
            self.query_one(Transcript).add_note(f"note: {note}")
        self.set_state("ready")

    def on_model_failed(self, message: ModelFailed) -> None:
        self.runtime = message.still_open
        self.set_state("ready" if self.runtime else "no model")
        self.report(message.error)

    def report(self, error: EdgekitError) -> None:
        if os.environ.get("EDGEKIT_DEBUG") == "1":
            raise error  # as the CLI does: the traceback, not the message
        self.show_error(error)

    # Generation.

    def on_input_submitted(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if not text:
            return
        if self.runtime is None and self.state != "loading":
            self.notify("No model is loaded: pick one with ctrl+o.", severity="warning")
            return
        if self.runtime is None or self.state != "ready":
            self.notify(f"Wait: the model is {self.state}.")
            return
        event.input.clear()
        self.messages.append({"role": "user", "content": text})
        self.query_one(Transcript).add_prompt(text)
        self.stop_requested.clear()
        self.set_state("generating")
        n_ctx = self.plan.n_ctx if self.plan else 0
        self.generate(self.runtime, list(self.messages), n_ctx)

    @work(thread=True, exclusive=True, group="generate")
    def generate(self, runtime: Runtime, messages: list[dict[str, str]], n_ctx: int) -> None:
        self.monitor.begin_generation()
        result: GenerationResult | None = None
        error: EdgekitError | None = None
        dropped = 0
        try:
            tokens, dropped = fit_history(runtime, messages, n_ctx, self.params.max_tokens)
            result = runtime.generate(tokens, self.params, on_token=self.on_token)
        except GenerationStopped:
            pass
        except EdgekitError as e:
            error = e
        finally:
            self.monitor.end_generation(result.stats if result else None)
        self.post_from_worker(GenerationDone(result, error, dropped))

    def on_token(self, piece: str) -> None:
        if self.stop_requested.is_set():
            raise GenerationStopped
        self.pending.append(piece)
        self.monitor.token_arrived()

    def on_generation_done(self, message: GenerationDone) -> None:
        self.flush_tokens()
        transcript = self.query_one(Transcript)
        for _ in range(message.dropped):
            drop_oldest_turn(self.messages)
        if message.dropped:
            self.notify(f"Dropped the {message.dropped} oldest turn(s) to fit the context.")
        if message.error is not None:
            self.messages.pop()  # the turn that failed is not part of the conversation
            if isinstance(message.error, WorkerLostError):
                self.runtime = None  # its process is gone; ctrl+o loads the model again
                self.check_workers()
            transcript.add_note("(failed)")
            self.report(message.error)
        else:
            reply = message.result.text if message.result else transcript.reply_text
            self.messages.append({"role": "assistant", "content": reply.strip()})
            if message.result is None:
                transcript.add_note("(stopped)")
        self.refresh_metrics()
        lost = isinstance(message.error, WorkerLostError)
        self.set_state("no model" if lost else "ready")

    # Workers (only with --rpc).

    def on_pool_ready(self, message: PoolReady) -> None:
        if (panel := self.main_panel(WorkersPanel)) is not None:
            panel.show_pool(message.pool)

    def check_workers(self) -> None:
        runtime = self.runtime
        inner = getattr(runtime, "inner", runtime)  # under the bias guard
        if isinstance(inner, RpcRuntime) or self.state == "no model":
            self.poll_workers(inner if isinstance(inner, RpcRuntime) else None)

    @work(thread=True, exclusive=True, group="workers")
    def poll_workers(self, runtime: RpcRuntime | None) -> None:
        panel = self.main_panel(WorkersPanel)
        if runtime is not None:
            alive = runtime.worker_alive()
        elif panel is not None and panel.pool is not None:
            alive = {str(w.endpoint): responds(w.endpoint) for w in panel.pool.workers}
        else:
            return
        self.post_from_worker(WorkersAlive(alive))

    def on_workers_alive(self, message: WorkersAlive) -> None:
        if (panel := self.main_panel(WorkersPanel)) is not None:
            panel.show_alive(message.alive)

    # Footer actions.

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in UNAVAILABLE:
            return None
        if self.attached is not None:
            return action == "quit"  # the model is the server's: the other keys are hidden
        if action == "stop":
            return self.state == "generating"
        if action in {"new_prompt", "switch_model"}:
            return True if self.state not in {"generating", "loading"} else None
        return True

    def action_new_prompt(self) -> None:
        self.messages.clear()
        self.query_one(Transcript).clear()
        self.query_one("#prompt", Input).focus()

    def action_stop(self) -> None:
        self.stop_requested.set()

    def action_toggle_bias_guard(self) -> None:
        """Wrap the runtime in the bias feedback loop (as `edgekit run --bias-guard`), or unwrap."""
        from edgekit.bias.guard import GuardedRuntime

        runtime = self.runtime
        if runtime is None or self.state != "ready":
            return
        if isinstance(runtime, GuardedRuntime):
            runtime.guard.close()  # takes the adapter off; the model stays loaded
            if runtime.guard.conn is not None:
                runtime.guard.conn.close()
            self.runtime = runtime.inner
            self.refresh_bias()
            return
        self.set_state("loading")
        self.enable_guard(runtime)

    @work(thread=True, exclusive=True, group="model")
    def enable_guard(self, runtime: Runtime) -> None:
        from edgekit.bias.guard import guard_runtime

        try:
            # Deriving the erasure adapter the first time takes minutes on the default model.
            guarded = guard_runtime(runtime, self.device)
        except EdgekitError as e:
            self.post_from_worker(ModelFailed(e, runtime))
            return
        self.post_from_worker(ModelLoaded(guarded))

    def show_bias(self, summary: dict[str, Any]) -> None:
        from edgekit.bias.guard import GuardedRuntime

        self.bias_summary = summary
        guard = "on" if isinstance(self.runtime, GuardedRuntime) else "off (ctrl+g)"
        if (panel := self.main_panel(BiasPanel)) is not None:
            panel.show(summary, guard)

    def refresh_bias(self) -> None:
        self.show_bias(self.bias_summary)

    def action_run_bias_suite(self) -> None:
        """Unavailable until the core can score bias (check_action keeps it disabled)."""

    def action_switch_model(self) -> None:
        current = str(self.plan.info.path) if self.plan else (self.model or "")
        self.push_screen(SwitchModelScreen(current), self.switch_to)

    def switch_to(self, model: str | None) -> None:
        if model is None:
            return
        self.model = model or None
        self.action_new_prompt()
        previous, self.runtime = self.runtime, None
        self.set_state("loading")
        self.load_model(self.model, self.device, self.n_ctx, previous)


def run_dashboard(
    model: str | Path | None,
    device: str,
    n_ctx: int | None,
    params: SamplingParams,
    threads: int | None = None,
    rpc: str | None = None,
) -> None:
    target = DashboardTarget(str(model) if model else None, device, n_ctx, threads, rpc)
    DashboardApp(target, params).run()


def run_attached(url: str, api_key: str | None = None) -> None:
    """`edgekit dashboard --attach URL`: a running server's panels, nothing loaded here."""
    DashboardApp(attach=ServerWatcher(url, api_key)).run()
