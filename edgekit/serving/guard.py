"""The bias guard on served traffic: score each output off the hot path, set the adapter's scale.

`edgekit serve --bias-adapter FILE|auto` starts llama-server with the erasure adapter loaded
(guard_server_args) and hands every finished exchange to Guard.observe, which only puts it on a
bounded queue (dropped when full: the guard must never slow or fail a request). A background
thread scores each output with the lexicon scorer (edgekit.bias.outputs: text only, no model
pass, so the guard needs neither torch nor a second copy of the model, which a Pi could not
hold), steps the same controller as `edgekit run --bias-guard` (edgekit.bias.guard) and, when
the scale moves, sets it for every later request through llama-server's POST /lora-adapters.
Every step goes to the bias history as a "serve" loop session, as the run guard's rows do. A
scale someone else set (a process that reaches llama-server's own port with the key) is set
back at the first scored output after the next drift check (DRIFT_CHECK_S); through the front,
a client's POST /lora-adapters and a request's own "lora" field are refused.

The scale stays within the limits every guard keeps (edgekit.bias.guard.ScaleLimits).
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

from edgekit.bias import store
from edgekit.bias.controller import LoopConfig, LoopState, adapter_path, next_turn
from edgekit.bias.erasure import KEY_META, check_adapter
from edgekit.bias.guard import OutputScorer, ScaleLimits, loop_config, persist, score_and_step
from edgekit.bias.outputs import LexiconScorer
from edgekit.errors import BiasError, EdgekitError
from edgekit.gguf.reader import load_model_info, read_header
from edgekit.serving.exchange import Exchange

log = logging.getLogger("edgekit.bias")

QUEUE_SIZE = 64
HTTP_TIMEOUT_S = 10.0
SCALE_TOLERANCE = 1e-4  # llama-server keeps the scale as a float32
DRIFT_CHECK_S = 10.0  # how often the scale on the server is compared with the guard's
# The least change of scale worth sending to llama-server (a limit of the range is always sent).
# Requests decode together only while their adapter scales are equal (llama-server's
# can_batch_with): a request that starts after a change waits for those still running at the old
# scale, up to a whole answer. The controller relaxes in geometric steps (0.85, 0.745, 0.67, ...,
# 0.5012 -> 0.5: 18 changes from the ceiling to the floor, most under 0.01); with this band, 7.
MIN_SCALE_STEP = 0.05
SOURCE = "serve"
# Endpoints whose output is generated text; embeddings and the rest carry nothing to score.
SCORED_PATHS = frozenset(
    {"/v1/chat/completions", "/v1/completions", "/chat/completions", "/completions", "/completion"}
)


def recorded_scale(adapter: Path) -> float:
    """The scale `edgekit bias --mitigate` wrote into the adapter's metadata (0 if none)."""
    raw = read_header(adapter).metadata.get(KEY_META)
    try:
        return float(json.loads(str(raw)).get("scale", 0.0)) if raw is not None else 0.0
    except (ValueError, TypeError, AttributeError):
        return 0.0


def resolve_bias_adapter(spec: str, model: Path) -> Path:
    """`--bias-adapter FILE|auto`: the adapter file, checked against the model.

    auto: the adapter `edgekit bias MODEL --mitigate` calibrated for this model, known from the
    "mitigate" session it leaves in the bias history, at the path it writes (one per model).
    """
    if spec != "auto":
        path = Path(spec).expanduser()
        check_adapter(path, load_model_info(model))
        return path
    fingerprint = store.model_fingerprint(model)
    hint = f"Run `edgekit bias {model} --mitigate` first, or pass an adapter file."
    conn = store.connect()
    try:
        calibrated = store.latest_session_of(conn, fingerprint, "mitigate")
    finally:
        conn.close()
    path = adapter_path(fingerprint)
    if calibrated is None or not path.is_file():
        raise BiasError(
            f"no calibrated bias adapter for {model.name} in the bias history", hint=hint
        )
    check_adapter(path, load_model_info(model))
    if recorded_scale(path) <= 0:
        raise BiasError(
            f"the calibration of {model.name} found no adapter scale that lowers its bias "
            "within the perplexity and accuracy limits",
            hint=hint,
        )
    return path


def guard_server_args(adapter: Path) -> list[str]:
    """llama-server's flags to load the adapter at the scale the guard starts from.

    --lora-scaled, not --lora-init-without-apply: the latter still lists the adapter at scale 1
    for every request until the first POST /lora-adapters, so a request served before the guard
    starts would run at a scale nobody chose.
    """
    text = str(adapter)
    if "," in text or ":" in text:
        # llama-server splits --lora-scaled on both.
        raise BiasError(
            f"llama-server cannot load an adapter whose path contains ',' or ':': {text}",
            hint="Copy the adapter to a path without them and pass that file.",
        )
    start = ScaleLimits.from_calibrated(recorded_scale(adapter)).ceiling
    return ["--lora-scaled", f"{text}:{start:g}"]


class ScaleSetter(Protocol):
    def scale(self) -> float: ...

    def set_scale(self, scale: float) -> None: ...


class LoraAdapters:
    """One adapter's scale on a running llama-server, through GET/POST /lora-adapters."""

    def __init__(self, server_url: str, adapter: Path, api_key: str | None = None) -> None:
        self.url = server_url.rstrip("/") + "/lora-adapters"
        self.api_key = api_key
        listed = self.list()
        ids = [
            a["id"] for a in listed if Path(str(a.get("path", ""))).resolve() == adapter.resolve()
        ]
        if not ids:
            raise BiasError(
                f"llama-server at {server_url} has not loaded the bias adapter {adapter}",
                hint="Start it with the flags guard_server_args(adapter) returns.",
            )
        self.id = int(ids[0])

    def _request(self, body: object | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url, data=data, method="GET" if body is None else "POST")
        req.add_header("Content-Type", "application/json")
        if self.api_key:
            req.add_header("Authorization", f"Bearer {self.api_key}")
        try:
            with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT_S) as resp:
                return json.loads(resp.read())
        except (urllib.error.URLError, OSError, ValueError) as e:
            raise EdgekitError(f"llama-server's /lora-adapters did not answer: {e}") from None

    def list(self) -> list[dict[str, Any]]:
        listed = self._request()
        return [dict(a) for a in listed] if isinstance(listed, list) else []

    def scale(self) -> float:
        return float(next(a["scale"] for a in self.list() if a["id"] == self.id))

    def set_scale(self, scale: float) -> None:
        # A POST sets every adapter it does not name to 0: name them all, at their scales.
        scales = [{"id": a["id"], "scale": a["scale"]} for a in self.list()]
        body = [
            {"id": s["id"], "scale": scale if s["id"] == self.id else s["scale"]} for s in scales
        ]
        self._request(body)


class Guard:
    """The served bias loop: observe() on the request path, everything else on its thread."""

    def __init__(
        self,
        setter: ScaleSetter,
        config: LoopConfig,
        scorer: OutputScorer | None = None,
        conn: Any | None = None,
        model_hash: str = "",
        session_id: str | None = None,
        queue_size: int = QUEUE_SIZE,
    ) -> None:
        self.setter = setter
        self.config = config
        self.scorer: OutputScorer = scorer or LexiconScorer()
        self.conn = conn
        self.model_hash = model_hash
        self.session_id = session_id or f"serve-{uuid.uuid4().hex[:12]}"
        self.state = LoopState(strength=config.max_strength)
        self.applied = config.max_strength  # the scale llama-server has (start_guard sets it)
        self.dropped = 0
        self.failures = 0
        self.drift_check_s = DRIFT_CHECK_S
        self._checked_at = time.monotonic()
        self._queue: queue.Queue[Exchange | None] = queue.Queue(maxsize=queue_size)
        self._closed = threading.Event()
        self._persist(None)
        self._thread = threading.Thread(target=self._run, name="edgekit-guard", daemon=True)
        self._thread.start()

    def observe(self, exchange: Exchange) -> None:
        """Queue a finished exchange for scoring; never blocks, never raises."""
        try:
            if self._closed.is_set() or not worth_scoring(exchange):
                return
            self._queue.put_nowait(exchange)
        except queue.Full:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 100 == 0:
                log.warning("bias guard: queue full, %d outputs left unscored", self.dropped)
        except Exception:  # the caller is the server's front: nothing may reach it
            log.exception("bias guard: could not queue an output")

    def drain(self, timeout: float = 30.0) -> bool:
        """Wait until every queued output is scored (tests, shutdown); False on timeout."""
        done = threading.Event()

        def wait() -> None:
            self._queue.join()
            done.set()

        threading.Thread(target=wait, daemon=True).start()
        return done.wait(timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Score what is queued, stop the thread, close the history."""
        if self._closed.is_set():
            return
        self._closed.set()
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=timeout)
        self._thread.join(timeout)
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def _run(self) -> None:
        while True:
            exchange = self._queue.get()
            try:
                if exchange is None:
                    return
                self._score(exchange)
            except Exception:  # one bad output or a busy server must not end the loop
                self.failures += 1
                log.exception("bias guard: scoring or setting the scale failed")
            finally:
                self._queue.task_done()

    def _score(self, exchange: Exchange) -> None:
        state, adj = score_and_step(self.scorer, exchange.text, self.state, self.config)
        if self._worth_sending(adj.strength_after):
            self.setter.set_scale(adj.strength_after)
            self.applied = adj.strength_after
            self._checked_at = time.monotonic()
        elif self._drift_check_due() and (
            abs((found := self.setter.scale()) - self.applied) > SCALE_TOLERANCE
        ):
            # Set on llama-server's own port by a process with the key: the guard's scale wins.
            log.warning(
                "bias guard: the adapter's scale was %.3f, not %.3f: set again",
                found,
                self.applied,
            )
            self.setter.set_scale(self.applied)
            adj = replace(adj, detail={**adj.detail, "found_scale": found})
        adj = replace(adj, detail={**adj.detail, "path": exchange.path, "served": self.applied})
        self.state = next_turn(state)
        self._persist(adj)

    def _worth_sending(self, scale: float) -> bool:
        """A change of MIN_SCALE_STEP or more, or onto a limit of the range."""
        if abs(scale - self.applied) <= SCALE_TOLERANCE:
            return False
        limits = (self.config.floor, self.config.max_strength)
        on_limit = any(abs(scale - x) <= SCALE_TOLERANCE for x in limits)
        return on_limit or abs(scale - self.applied) >= MIN_SCALE_STEP - SCALE_TOLERANCE

    def _drift_check_due(self) -> bool:
        # GET /lora-adapters is a task in llama-server's queue, served between decode steps:
        # asked after every output it costs the stream, so a foreign scale is looked for at
        # most every DRIFT_CHECK_S.
        now = time.monotonic()
        if now - self._checked_at < self.drift_check_s:
            return False
        self._checked_at = now
        return True

    def _persist(self, adjustment: Any) -> None:
        if self.conn is not None:
            persist(self.conn, self.session_id, self.model_hash, "", SOURCE, self, adjustment)


def worth_scoring(exchange: Exchange) -> bool:
    return exchange.status == 200 and exchange.path in SCORED_PATHS and bool(exchange.text.strip())


def served_loop(limits: ScaleLimits) -> LoopConfig:
    # No regenerations: the response has already gone to the client.
    return loop_config(limits, LoopConfig(max_regenerations=0))


def start_guard(model: Path, adapter_spec: str, server_url: str, api_key: str | None) -> Guard:
    """The guard for a running llama-server started with guard_server_args(adapter).

    Raises EdgekitError when the adapter cannot be resolved or the server has not loaded it.
    """
    adapter = resolve_bias_adapter(adapter_spec, model)
    limits = ScaleLimits.from_calibrated(recorded_scale(adapter))
    setter = LoraAdapters(server_url, adapter, api_key)
    setter.set_scale(limits.ceiling)  # whatever it was, the session starts where it says
    return Guard(
        setter,
        served_loop(limits),
        conn=store.connect(),
        model_hash=store.model_fingerprint(model),
    )
