"""The dashboard's workers panel: which RPC worker holds which layers, and whether it still answers.

Shown only when the model runs on workers (`edgekit dashboard --rpc ...`). Liveness comes from the
session's own TCP connections to the workers (RpcRuntime.worker_alive): a worker serves one client
at a time, so it cannot be pinged while it serves this one, but a worker that stops closes its
side of the connection, and a turn that waits too long for a token ends with an error.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.message import Message

from edgekit.backends.llama_cpp.rpc.pool import PoolPlan
from edgekit.tui.widgets import Panel, Readout, human_bytes


class PoolReady(Message):
    def __init__(self, pool: PoolPlan) -> None:
        super().__init__()
        self.pool = pool


class WorkersAlive(Message):
    def __init__(self, alive: dict[str, bool]) -> None:
        super().__init__()
        self.alive = alive


class WorkersPanel(Panel):
    DEFAULT_CSS = """
    WorkersPanel #workers-text { height: auto; }
    """

    def __init__(self) -> None:
        super().__init__("Workers", id="workers")
        self.pool: PoolPlan | None = None
        self.alive: dict[str, bool] = {}

    def compose(self) -> ComposeResult:
        yield Readout("asking the workers…", id="workers-text")

    def show_pool(self, pool: PoolPlan) -> None:
        self.pool = pool
        self.alive = {str(w.endpoint): True for w in pool.workers}
        self._redraw()

    def show_alive(self, alive: dict[str, bool]) -> None:
        if alive != self.alive:
            self.alive = dict(alive)
            self._redraw()

    def mark_lost(self, endpoints: list[str]) -> None:
        self.show_alive({k: (v and k not in endpoints) for k, v in self.alive.items()})

    def _redraw(self) -> None:
        self.query_one("#workers-text", Readout).show(self.lines())

    def lines(self) -> Text:
        if self.pool is None:
            return Text("asking the workers…")
        text = Text()
        for i, share in enumerate(self.pool.split.shares):
            name = share.member.name
            worker = name.split("#")[0]
            up = i == 0 or self.alive.get(worker, False)
            if i:
                text.append("\n")
            text.append("● " if up else "✗ ", style="green" if up else "bold red")
            text.append(name, style="bold" if up else "red")
            text.append(
                f"\n  {share.describe_layers()} · {human_bytes(share.total)}"
                f" of {human_bytes(share.member.budget)}"
            )
            if not up:
                text.append("\n  not answering", style="bold red")
        return text
