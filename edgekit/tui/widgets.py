"""The dashboard's panels. Each shows numbers the core computed; none computes its own."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.widgets import DataTable, Sparkline, Static

from edgekit.backends.runner import RunPlan
from edgekit.gguf.reader import ModelInfo
from edgekit.tui.monitor import LiveGeneration, MemoryReading, MonitorSnapshot

BAR_WIDTH = 12


def human_bytes(n: float) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= size:
            return f"{n / size:,.1f} {unit}"
    return f"{n:,.0f} B"


def share_bar(part: float, whole: float, width: int = BAR_WIDTH) -> Text:
    fraction = min(1.0, part / whole) if whole > 0 else 0.0
    filled = round(fraction * width)
    style = "green" if fraction < 0.8 else "red"
    return Text.assemble(("█" * filled, style), ("░" * (width - filled), "dim"), f" {fraction:.0%}")


class Panel(Vertical):
    """A titled box; the title rides on the top border so a panel costs one line of chrome."""

    def __init__(self, title: str, *, id: str) -> None:
        super().__init__(id=id, classes="panel")
        self.border_title = title


class Readout(Static):
    """Text that changes a few times a second but keeps its line count: an update with the same
    text is skipped, and none re-runs the layout, to keep the UI thread's share of the GIL (and
    of the cores the decode threads use) small while a reply streams."""

    def show(self, text: Text) -> None:
        if text != self.content:
            self.update(text, layout=False)


class MemoryPanel(Panel):
    def __init__(self) -> None:
        super().__init__("Memory", id="memory")

    def compose(self) -> ComposeResult:
        yield Readout("sampling…\n\n", id="memory-text")
        yield Sparkline([], id="rss-spark")

    def show(self, snapshot: MonitorSnapshot) -> None:
        self.show_reading(snapshot.memory, snapshot.rss_history)

    def show_reading(
        self, memory: MemoryReading | None, history: Sequence[int], missing: str = ""
    ) -> None:
        """`missing`: what to say when there is no reading (an attached server's process)."""
        if memory is not None:
            self.query_one("#memory-text", Readout).show(self._lines(memory))
        elif missing:
            self.query_one("#memory-text", Readout).show(Text(missing))
        self.query_one("#rss-spark", Sparkline).data = list(history)

    @staticmethod
    def _lines(m: MemoryReading) -> Text:
        return Text(
            f"RSS  {human_bytes(m.rss_bytes)} · peak {human_bytes(m.peak_rss_bytes)}\n"
            f"free {human_bytes(m.available_bytes)} of {human_bytes(m.total_bytes)}\n"
            f"swap {human_bytes(m.swap_used_bytes)} of {human_bytes(m.swap_total_bytes)}"
        )


class SpeedPanel(Panel):
    def __init__(self) -> None:
        super().__init__("Speed", id="speed")

    def compose(self) -> ComposeResult:
        yield Readout("no generation yet\n", id="speed-text")
        yield Sparkline([], id="rate-spark")

    def show(self, snapshot: MonitorSnapshot) -> None:
        self.show_rates(speed_text(snapshot), snapshot.decode_rate_history)

    def show_rates(self, text: Text, rates: Sequence[float]) -> None:
        self.query_one("#speed-text", Readout).show(text)
        self.query_one("#rate-spark", Sparkline).data = list(rates)


def speed_text(snapshot: MonitorSnapshot) -> Text:
    if snapshot.live is not None:
        return live_speed_text(snapshot.live, "prompt …")
    if snapshot.stopped is not None:
        return live_speed_text(snapshot.stopped, "stopped")
    last = snapshot.last
    if last is None:
        return Text("no generation yet\n")
    prompt, decode = last.prompt_tokens_per_s, last.decode_tokens_per_s
    return Text(
        f"prompt {prompt:,.0f} · decode {decode:,.1f} tok/s\n"
        f"TTFT {last.time_to_first_token_s:.2f} s · {last.generated_tokens} tok"
    )


def live_speed_text(live: LiveGeneration, prefix: str) -> Text:
    """Numbers counted from the token callbacks: no prompt rate until llama.cpp reports it."""
    ttft = "…" if live.time_to_first_token_s is None else f"{live.time_to_first_token_s:.2f} s"
    return Text(
        f"{prefix} · decode {live.decode_tokens_per_s:,.1f} tok/s\nTTFT {ttft} · {live.tokens} tok"
    )


class ServerPanel(Panel):
    """An attached server's requests and slots (`edgekit dashboard --attach`)."""

    def __init__(self) -> None:
        super().__init__("Server", id="server")

    def compose(self) -> ComposeResult:
        yield Readout("connecting…\n", id="server-text")

    def show(self, text: Text) -> None:
        readout = self.query_one("#server-text", Readout)
        if text.plain.count("\n") != Text.from_markup(str(readout.content)).plain.count("\n"):
            readout.update(text)  # a slot line more or fewer: this one update re-runs the layout
        else:
            readout.show(text)


class DevicePanel(Panel):
    def __init__(self) -> None:
        super().__init__("Device", id="device")

    def compose(self) -> ComposeResult:
        yield Static("loading…", id="device-text")

    def show(self, plan: RunPlan) -> None:
        p, e = plan.profile, plan.estimate
        self.border_title = f"Device {p.name}"
        need, budget = e.against_budget, e.budget
        line1 = f"{p.threads} threads · ctx {plan.n_ctx} · {p.gpu_layers} GPU layers"
        line2 = f"{human_bytes(need)} of {human_bytes(budget)} "
        self.query_one("#device-text", Static).update(
            Text.assemble(line1, "\n", line2, share_bar(need, budget))
        )


class PrecisionPanel(Panel):
    def __init__(self) -> None:
        super().__init__("Precision", id="precision")

    def compose(self) -> ComposeResult:
        table: DataTable[str] = DataTable(id="types", cursor_type="none", zebra_stripes=True)
        table.add_columns("type", "tensors", "size", "share")
        yield table

    def show(self, info: ModelInfo) -> None:
        self.border_title = f"Precision {info.file_type} · {info.bits_per_weight:.2f} bpw"
        table = self.query_one("#types", DataTable)
        table.clear()
        for name, (count, size) in info.types.items():
            share = size / info.tensor_bytes if info.tensor_bytes else 0.0
            table.add_row(name, str(count), human_bytes(size), f"{share:.1%}", key=name)


class Transcript(VerticalScroll):
    """The conversation: the user's prompts and the model's streamed replies."""

    def __init__(self, *, id: str) -> None:
        super().__init__(id=id)
        self.reply: Static | None = None
        self.reply_text = ""

    def add_prompt(self, text: str) -> None:
        self.mount(Static(Text("> " + text), classes="prompt-turn"))
        self.reply = Static("", classes="reply-turn")
        self.reply_text = ""
        self.mount(self.reply)
        self.scroll_end(animate=False)

    def append_reply(self, piece: str) -> None:
        if self.reply is None:
            return
        self.reply_text += piece
        self.reply.update(Text(self.reply_text))
        self.scroll_end(animate=False)

    def add_note(self, text: str) -> None:
        self.mount(Static(Text(text), classes="note"))
        self.scroll_end(animate=False)

    def clear(self) -> None:
        self.reply, self.reply_text = None, ""
        self.remove_children()
