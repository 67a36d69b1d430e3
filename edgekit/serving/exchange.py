"""One finished request/response pair, as the server's front hands it to observers (the bias guard).

Observers get it after the response has gone to the client, through a queue a thread of their
own empties, so nothing they do can slow or break a stream.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Exchange:
    path: str  # "/v1/chat/completions", "/v1/completions", ...
    request: dict[str, Any]  # the request body as the client sent it (parsed JSON)
    text: str  # the generated text, assembled from the stream or read from the JSON body
    status: int  # the HTTP status the client got


Observer = Callable[[Exchange], None]


class Observers:
    """Observers called one exchange at a time on a thread of their own, off the request path."""

    def __init__(self) -> None:
        self._observers: list[Observer] = []
        self._queue: queue.SimpleQueue[Exchange | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def add(self, observer: Observer) -> None:
        self._observers.append(observer)
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="edgekit-observers", daemon=True)
            self._thread.start()

    def hand_off(self, exchange: Exchange) -> None:
        if self._observers:
            self._queue.put(exchange)  # never blocks: the queue is unbounded

    def _run(self) -> None:
        while (exchange := self._queue.get()) is not None:
            for observer in self._observers:
                try:
                    observer(exchange)
                except Exception:  # one observer's bug must not stop the others or the server
                    log.exception("observer %r failed", observer)

    def close(self, timeout: float = 5.0) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout)


def generated_text(body: bytes, content_type: str) -> str:
    """The text the model generated, from a stream of SSE events or one JSON body."""
    if "text/event-stream" in content_type:
        events = []
        for line in body.decode("utf-8", "replace").splitlines():
            if line.startswith("data:") and line[5:].strip() not in ("", "[DONE]"):
                with contextlib.suppress(ValueError):
                    events.append(json.loads(line[5:]))
        return "".join(text_of(e) for e in events)
    try:
        return text_of(json.loads(body))
    except ValueError:
        return ""


def text_of(obj: Any) -> str:
    if not isinstance(obj, dict):
        return ""
    choices = obj.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        first = choices[0]
        for key in ("delta", "message"):
            part = first.get(key)
            if isinstance(part, dict) and isinstance(part.get("content"), str):
                return str(part["content"])
        return str(first["text"]) if isinstance(first.get("text"), str) else ""
    content = obj.get("content")
    return content if isinstance(content, str) else ""
