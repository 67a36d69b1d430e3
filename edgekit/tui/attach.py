"""`edgekit dashboard --attach URL`: a running server as the dashboard's data source.

Everything comes from what llama-server itself exposes (through `edgekit serve`'s front, which
passes these paths through), polled a few times a second on a background thread:
- /metrics (Prometheus text; llama-server needs --metrics): requests in flight and deferred, the
  token counters for the aggregate rate, prompt seconds for TTFT;
- /slots: per-slot tokens/s, and requests done (a slot's task counts as done when the slot goes
  idle on it or takes another one; a slot that serves two whole requests between two polls
  counts one of them, since llama-server keeps no count of finished requests);
- /lora-adapters: the bias adapter's scale the guard sets;
- the server's memory: the process listening on the URL's port and its children (the front
  and its llama-server), found with psutil. That works only when the server runs on this
  machine: llama-server reports no memory, so a remote server's memory shows as not visible.
- the bias scores: this machine's bias history (the "serve" loop session of the server's model,
  found through /props' model path), so for a remote server they are the local history's.

TTFT: llama-server times prompt processing, not the first byte a client sees; the dashboard shows
prompt seconds per finished request over the last poll window where one finished, which leaves
out the queueing and the first decode step.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import sqlite3
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import psutil
from rich.text import Text

from edgekit.errors import EdgekitError
from edgekit.tui.monitor import DEFAULT_HISTORY, MemoryReading
from edgekit.tui.ticker import Ticker

POLL_INTERVAL_S = 0.5
HTTP_TIMEOUT_S = 5.0
METRIC_PREFIX = "llamacpp:"


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text exposition -> {name without llama.cpp's prefix: value}; labels dropped."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, rest = line.partition(" ")
        name = name.split("{", 1)[0].removeprefix(METRIC_PREFIX)
        try:
            out[name] = float(rest.split()[0])
        except (ValueError, IndexError):
            continue
    return out


class ServerClient:
    """GET requests to a llama-server (or edgekit serve) with the API key, when given."""

    def __init__(self, url: str, api_key: str | None = None) -> None:
        self.url = url.rstrip("/")
        self.api_key = api_key

    def get(self, path: str) -> bytes:
        req = urllib.request.Request(self.url + path)
        if self.api_key:
            req.add_header("Authorization", f"Bearer {self.api_key}")
        try:
            with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT_S) as resp:
                return bytes(resp.read())
        except urllib.error.HTTPError as e:
            hint = "Pass the server's key with --api-key." if e.code == 401 else None
            raise EdgekitError(f"{self.url}{path} answered HTTP {e.code}", hint=hint) from None
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise EdgekitError(f"{self.url} does not answer: {reason}") from None

    def json(self, path: str) -> Any:
        return json.loads(self.get(path))


def is_local(host: str) -> bool:
    if host in ("localhost", ""):
        return True
    try:
        addr = ipaddress.ip_address(socket.gethostbyname(host))
    except (OSError, ValueError):
        return False
    if addr.is_loopback or addr.is_unspecified:
        return True
    return any(a.address == str(addr) for nics in psutil.net_if_addrs().values() for a in nics)


def listening_process(port: int) -> psutil.Process | None:
    """The process that listens on a TCP port of this machine, if it can be seen."""
    try:
        conns = psutil.net_connections(kind="tcp")
    except (psutil.AccessDenied, OSError):
        return None
    for c in conns:
        if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and c.pid:
            try:
                return psutil.Process(c.pid)
            except psutil.Error:
                return None
    return None


class ServerMemory:
    """RSS of the server's process tree (its front and llama-server) and this machine's RAM."""

    def __init__(self, url: str) -> None:
        parts = urllib.parse.urlsplit(url)
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.local = is_local(parts.hostname or "")
        self.process: psutil.Process | None = None
        self.peak = 0

    @property
    def note(self) -> str:
        if not self.local:
            return "server on another machine: its memory is not visible from here"
        if self.process is None:
            return f"no process found listening on port {self.port}"
        return f"pid {self.process.pid} ({self.process.name()})"

    def read(self) -> MemoryReading | None:
        if not self.local:
            return None
        if self.process is None or not self.process.is_running():
            self.process = listening_process(self.port)
            if self.process is None:
                return None
        try:
            tree = [self.process, *self.process.children(recursive=True)]
            rss = sum(int(p.memory_info().rss) for p in tree if p.is_running())
        except psutil.Error:
            self.process = None
            return None
        self.peak = max(self.peak, rss)
        vm, swap = psutil.virtual_memory(), psutil.swap_memory()
        return MemoryReading(
            rss, self.peak, int(vm.available), int(vm.total), int(swap.used), int(swap.total)
        )


@dataclass(frozen=True)
class SlotReading:
    id: int
    processing: bool
    decoded: int  # tokens generated so far by its current request (0 when idle)
    tokens_per_s: float  # over the last poll interval; 0 when idle


@dataclass(frozen=True)
class ServerSnapshot:
    url: str
    error: str | None = None  # why the last poll failed; the other fields are from before it
    model: str = ""
    in_flight: int = 0
    deferred: int = 0
    done: int = 0
    generated_tokens: int = 0
    prompt_tokens: int = 0
    decode_tokens_per_s: float = 0.0  # every slot together, over the last poll interval
    ttft_s: float | None = None
    slots: tuple[SlotReading, ...] = ()
    memory: MemoryReading | None = None
    memory_note: str = ""
    rss_history: tuple[int, ...] = ()
    rate_history: tuple[float, ...] = ()
    adapters: tuple[dict[str, Any], ...] = ()
    bias: dict[str, Any] = field(default_factory=dict)  # edgekit.tui.bias.bias_summary's shape
    guard: dict[str, Any] | None = None  # the "serve" loop session in the history


class SlotTracker:
    """Requests done and per-slot rates from successive /slots readings (module doc)."""

    def __init__(self) -> None:
        self.done = 0
        self._counted: set[tuple[int, int]] = set()  # (slot, task) already counted
        self._last: dict[int, tuple[int | None, bool, int]] = {}  # slot -> (task, busy, decoded)

    def update(self, slots: list[dict[str, Any]], dt: float) -> tuple[SlotReading, ...]:
        out = []
        for s in slots:
            sid, busy = int(s["id"]), bool(s.get("is_processing"))
            task = s.get("id_task")
            decoded = (
                int((s.get("next_token") or [{}])[0].get("n_decoded", 0)) if task is not None else 0
            )
            prev_task, _, prev_decoded = self._last.get(sid, (None, False, 0))
            if prev_task is not None and prev_task != task:
                self._count(sid, prev_task)
            if task is not None and not busy:
                self._count(sid, task)
            delta = decoded - prev_decoded if task == prev_task else decoded
            rate = max(0, delta) / dt if busy and dt > 0 else 0.0
            self._last[sid] = (task, busy, decoded)
            out.append(SlotReading(sid, busy, decoded, rate))
        return tuple(out)

    def _count(self, slot: int, task: int) -> None:
        if (slot, task) not in self._counted:
            self._counted.add((slot, task))
            self.done += 1


class ServerWatcher:
    """Polls a server every `interval_s` on a daemon thread; fronts read `snapshot()`."""

    def __init__(
        self,
        url: str,
        api_key: str | None = None,
        interval_s: float = POLL_INTERVAL_S,
        history: int = DEFAULT_HISTORY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = ServerClient(url, api_key)
        self.memory = ServerMemory(url)
        self._clock = clock
        self._slots = SlotTracker()
        self._rss: deque[int] = deque(maxlen=history)
        self._rates: deque[float] = deque(maxlen=history)
        self._last_poll: tuple[float, dict[str, float]] | None = None
        self._ttft: float | None = None
        self._model_path: Path | None = None
        self._model_hash: str | None = None
        self._lock = threading.Lock()
        self._snapshot = ServerSnapshot(self.client.url)
        self._ticker = Ticker(self.poll, interval_s, "edgekit-attach")

    def start(self) -> None:
        self._ticker.start()

    def stop(self) -> None:
        self._ticker.stop()

    def snapshot(self) -> ServerSnapshot:
        with self._lock:
            return self._snapshot

    def poll(self) -> ServerSnapshot:
        """One reading of every source; a failure keeps the last numbers and says why."""
        try:
            snap = self._read()
        except EdgekitError as e:
            snap = replace(self.snapshot(), error=e.message)
        except (ValueError, KeyError, TypeError) as e:
            snap = replace(self.snapshot(), error=f"unexpected answer from the server: {e}")
        with self._lock:
            self._snapshot = snap
        return snap

    def _read(self) -> ServerSnapshot:
        now = self._clock()
        metrics = parse_metrics(self.client.get("/metrics").decode())
        slots_json = self.client.json("/slots")
        adapters = self.client.json("/lora-adapters")
        dt = now - self._last_poll[0] if self._last_poll else 0.0
        done_before = self._slots.done
        slots = self._slots.update(list(slots_json), dt)
        generated = metrics.get("tokens_predicted_total", 0.0)
        rate = 0.0
        if self._last_poll is not None and dt > 0:
            before = self._last_poll[1]
            rate = max(0.0, generated - before.get("tokens_predicted_total", 0.0)) / dt
            finished = self._slots.done - done_before
            prompt_s = metrics.get("prompt_seconds_total", 0.0)
            prompt_s -= before.get("prompt_seconds_total", 0.0)
            if finished > 0:
                self._ttft = max(0.0, prompt_s) / finished
        self._last_poll = (now, metrics)
        memory = self.memory.read()
        if memory is not None:
            self._rss.append(memory.rss_bytes)
        if any(s.processing for s in slots) or rate > 0:
            self._rates.append(rate)
        bias, guard = self._bias()
        return ServerSnapshot(
            url=self.client.url,
            model=self._model_path.name if self._model_path else "",
            in_flight=int(metrics.get("requests_processing", 0)),
            deferred=int(metrics.get("requests_deferred", 0)),
            done=self._slots.done,
            generated_tokens=int(generated),
            prompt_tokens=int(metrics.get("prompt_tokens_total", 0)),
            decode_tokens_per_s=rate,
            ttft_s=self._ttft,
            slots=slots,
            memory=memory,
            memory_note=self.memory.note,
            rss_history=tuple(self._rss),
            rate_history=tuple(self._rates),
            adapters=tuple(dict(a) for a in adapters) if isinstance(adapters, list) else (),
            bias=bias,
            guard=guard,
        )

    def _bias(self) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """This model's stored scores and its latest served loop session, from the history."""
        from edgekit.bias import history, store
        from edgekit.errors import HistoryCorruptError

        try:
            if self._model_hash is None:
                props = self.client.json("/props")
                path = Path(str(props.get("model_path", "")))
                if not path.is_file():
                    return {}, None
                self._model_path, self._model_hash = path, store.model_fingerprint(path)
            summary = history.latest_scores(model_hash=self._model_hash)
            conn = store.connect()
            try:
                session = store.latest_session_of(conn, self._model_hash, "serve")
            finally:
                conn.close()
            guard = history.loop_state(session_id=session["id"], events=5) if session else None
            return summary, guard
        except HistoryCorruptError as e:
            return {"corrupt": e.message}, None
        except (OSError, sqlite3.Error, EdgekitError, ValueError):
            return {}, None


def requests_text(snap: ServerSnapshot) -> Text:
    """The Server panel: requests, then one line per slot."""
    text = Text(f"{snap.in_flight} in flight · {snap.deferred} queued · {snap.done} done\n")
    for s in snap.slots:
        # llama-server zeroes a slot's counts when its request ends: an idle slot has none.
        busy = f"● {s.tokens_per_s:,.1f} tok/s · {s.decoded} tok"
        text.append(f"slot {s.id} {busy if s.processing else '○ idle'}\n")
    if snap.error:
        text.append(snap.error, style="bold red")
    return text


def speed_text(snap: ServerSnapshot) -> Text:
    ttft = "…" if snap.ttft_s is None else f"{snap.ttft_s:.2f} s"
    return Text(
        f"decode {snap.decode_tokens_per_s:,.1f} tok/s · TTFT {ttft}\n"
        f"{snap.generated_tokens:,} tok out · {snap.prompt_tokens:,} prompt"
    )


def guard_label(snap: ServerSnapshot) -> str:
    """The Bias panel's guard line: the adapter's live scale and the last scored outputs."""
    if not snap.adapters:
        return "no bias adapter loaded"
    scales = ", ".join(f"{float(a.get('scale', 0.0)):.2f}" for a in snap.adapters)
    label = f"adapter scale {scales}"
    events = (snap.guard or {}).get("events", [])
    if events:
        label += " · scored " + " ".join(f"{e['measured']:.2f}" for e in events[-3:])
    return label
