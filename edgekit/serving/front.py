"""edgekit's public HTTP side: checks each request, relays it to llama-server, streams the answer
back as it comes, and hands the finished exchange to observers.

Standard library only (asyncio), so serving needs nothing beyond the base install. The relay never
holds a response back: every piece llama-server sends (an SSE event of a stream, a block of a JSON
body) is written to the client and drained before the next one is read. What observers get is a
copy taken on the way, handed over after the last byte went out, through a queue a thread of their
own empties: an observer can be slow or fail without the stream noticing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import queue
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from edgekit.serving.checks import (
    GENERATING,
    MAX_BODY_BYTES,
    RequestError,
    check_api_key,
    check_body_size,
    check_request,
)
from edgekit.serving.exchange import Exchange

log = logging.getLogger(__name__)

Observer = Callable[[Exchange], None]
MAX_HEAD_BYTES = 64 * 1024
READ_SIZE = 64 * 1024
# Headers that describe one connection, not the message: each side sets its own.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "expect",
        "host",
    }
)


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


@dataclass(frozen=True)
class Upstream:
    """llama-server on loopback, with the key only edgekit knows."""

    host: str
    port: int
    api_key: str

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


@dataclass
class Request:
    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]
    lookup: dict[str, str] = field(default_factory=dict)  # lower-case name -> last value

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    @property
    def keep_alive(self) -> bool:
        connection = self.lookup.get("connection", "").lower()
        if self.version == "HTTP/1.0":
            return connection == "keep-alive"
        return connection != "close"


class ClientGone(Exception):
    """The client closed its connection (or sent something that cannot be framed)."""


class Front:
    """The asyncio server. `serve` runs until `stop`; bind errors surface from `start`."""

    def __init__(
        self,
        upstream: Upstream,
        api_key: str | None,
        n_ctx_slot: int,
        observers: Observers | None = None,
        guarded: bool = False,
    ) -> None:
        self.upstream = upstream
        self.api_key = api_key
        self.n_ctx_slot = n_ctx_slot
        self.observers = observers or Observers()
        self.guarded = guarded  # the bias guard owns the adapter scale
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self, sock: socket.socket) -> None:
        self._server = await asyncio.start_server(self._connection, sock=sock, limit=MAX_HEAD_BYTES)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                request = await _read_request_head(reader, writer)
                if request is None or not await self._exchange(request, reader, writer):
                    break
        except (ClientGone, ConnectionError, asyncio.IncompleteReadError):
            pass
        except (ValueError, asyncio.LimitOverrunError):
            pass  # a request body whose chunked framing is broken: nothing more can be read
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _exchange(
        self, request: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Answer one request; True when the connection can carry another."""
        try:
            check_api_key(request.path, request.lookup, self.api_key)
            body = await _read_body(request, reader, writer)
            parsed = check_request(
                request.method, request.path, request.lookup, body, self.n_ctx_slot, self.guarded
            )
        except RequestError as e:
            # An unread body (refused before reading) leaves the connection unusable.
            reusable = e.status not in (401, 413) and request.keep_alive
            await _answer(writer, request, e.status, e.body(), reusable)
            return reusable
        observe = parsed is not None and request.path in GENERATING
        return await self._relay(request, body, parsed if observe else None, writer)

    async def _relay(
        self,
        request: Request,
        body: bytes,
        observed: dict[str, Any] | None,
        writer: asyncio.StreamWriter,
    ) -> bool:
        try:
            up_reader, up_writer = await asyncio.open_connection(
                self.upstream.host, self.upstream.port, limit=MAX_HEAD_BYTES
            )
        except OSError:
            error = RequestError(
                502, "llama-server is not answering", "upstream_unavailable", "server_error"
            )
            await _answer(writer, request, 502, error.body(), False)
            return False
        try:
            up_writer.write(self._upstream_head(request, len(body)) + body)
            await up_writer.drain()
            head = await _read_response_head(up_reader)
            copy: list[bytes] | None = [] if observed is not None else None
            keep = request.keep_alive
            complete = await _relay_body(request, head, up_reader, writer, keep, copy)
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            # llama-server went away mid-answer: cut the client off so it sees an error at once
            # instead of waiting for the rest of a body that will never come.
            writer.transport.abort()
            return False
        finally:
            up_writer.transport.abort()
        if not complete:
            return False
        if observed is not None and copy is not None:
            content_type = _header(head.headers, "content-type")
            text = generated_text(b"".join(copy), content_type)
            self.observers.hand_off(Exchange(request.path, observed, text, head.status))
        return keep

    def _upstream_head(self, request: Request, length: int) -> bytes:
        lines = [f"{request.method} {request.target} HTTP/1.1"]
        for name, value in request.headers:
            low = name.lower()
            if low in HOP_BY_HOP or low in ("authorization", "x-api-key"):
                continue
            lines.append(f"{name}: {value}")
        lines += [
            f"Host: {self.upstream.host}:{self.upstream.port}",
            f"Authorization: Bearer {self.upstream.api_key}",
            f"Content-Length: {length}",
            "Connection: close",
        ]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


# --- HTTP/1.1 framing ----------------------------------------------------------------------------


def _parse_headers(lines: list[str]) -> list[tuple[str, str]]:
    headers = []
    for line in lines:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise ValueError(f"malformed header line {line[:60]!r}")
        headers.append((name, value.strip()))
    return headers


async def _read_request_head(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> Request | None:
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as e:
        if e.partial.strip():
            raise ClientGone from None
        return None  # the client closed an idle keep-alive connection
    except asyncio.LimitOverrunError:
        await _plain_error(writer, 431, "request headers are over 64 KiB")
        return None
    lines = raw.decode("latin-1").split("\r\n")[:-2]
    try:
        method, target, version = lines[0].split(" ")
        if not version.startswith("HTTP/1.") or not target.startswith("/"):
            raise ValueError(lines[0][:60])
        headers = _parse_headers(lines[1:])
    except ValueError:
        await _plain_error(writer, 400, "malformed HTTP request")
        return None
    return Request(method, target, version, headers, {n.lower(): v for n, v in headers})


async def _read_body(
    request: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> bytes:
    chunked = "chunked" in request.lookup.get("transfer-encoding", "").lower()
    length_text = request.lookup.get("content-length")
    if not chunked and length_text is None:
        return b""
    length = 0
    if not chunked:
        if not length_text or not length_text.isdigit():
            raise RequestError(400, "Content-Length is not a number", "invalid_request")
        length = int(length_text)
        check_body_size(length)
    if request.lookup.get("expect", "").lower() == "100-continue":
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # curl waits a second for it otherwise
        await writer.drain()
    if not chunked:
        return await reader.readexactly(length)
    parts: list[bytes] = []
    async for piece in _chunks(reader):
        parts.append(piece)
        check_body_size(sum(map(len, parts)))
    return b"".join(parts)


async def _chunks(reader: asyncio.StreamReader) -> Any:
    """The pieces of a chunked body, each as soon as it has arrived whole."""
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";", 1)[0].strip(), 16)  # ValueError: framing is broken
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":
                pass  # trailers: nothing edgekit passes on
            return
        if size > MAX_BODY_BYTES:
            raise ValueError(f"chunk of {size} bytes")
        yield await reader.readexactly(size)
        await reader.readexactly(2)


@dataclass(frozen=True)
class ResponseHead:
    """llama-server's status line and headers, as read."""

    status: int
    reason: str
    headers: list[tuple[str, str]]


async def _read_response_head(reader: asyncio.StreamReader) -> ResponseHead:
    raw = await reader.readuntil(b"\r\n\r\n")
    lines = raw.decode("latin-1").split("\r\n")[:-2]
    version, _, rest = lines[0].partition(" ")
    code, _, reason = rest.partition(" ")
    if not version.startswith("HTTP/1.") or not code.isdigit():
        raise ValueError(f"llama-server answered {lines[0][:60]!r}")
    return ResponseHead(int(code), reason, _parse_headers(lines[1:]))


def _header(headers: list[tuple[str, str]], name: str) -> str:
    return next((v for n, v in reversed(headers) if n.lower() == name), "")


async def _relay_body(
    request: Request,
    head: ResponseHead,
    up: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    keep: bool,
    copy: list[bytes] | None,
) -> bool:
    """Send the head and then each piece as it arrives; False if the client went away."""
    status, reason, headers = head.status, head.reason, head.headers
    no_body = request.method == "HEAD" or status in (204, 304) or status < 200
    chunked_up = "chunked" in _header(headers, "transfer-encoding").lower()
    length_text = _header(headers, "content-length")
    fixed = None if chunked_up or not length_text.isdigit() else int(length_text)
    chunked_down = not no_body and fixed is None and request.version != "HTTP/1.0"
    keep = keep and (no_body or fixed is not None or chunked_down)
    lines = [f"HTTP/1.1 {status} {reason}"]
    lines += [f"{n}: {v}" for n, v in headers if n.lower() not in HOP_BY_HOP]
    if fixed is not None and not no_body:
        lines.append(f"Content-Length: {fixed}")
    if chunked_down:
        lines.append("Transfer-Encoding: chunked")
    lines.append("Connection: " + ("keep-alive" if keep else "close"))
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    if no_body:
        await writer.drain()
        return True
    if fixed is not None:
        pieces = _fixed(up, fixed)
    elif chunked_up:
        pieces = _chunks(up)
    else:
        pieces = _until_eof(up)
    async for piece in pieces:
        if copy is not None:
            copy.append(piece)
        writer.write(b"%x\r\n%b\r\n" % (len(piece), piece) if chunked_down else piece)
        try:
            await writer.drain()
        except ConnectionError:
            return False  # the client left; closing upstream makes llama-server stop the task
    if chunked_down:
        writer.write(b"0\r\n\r\n")
    try:
        await writer.drain()
    except ConnectionError:
        return False
    return True


async def _fixed(reader: asyncio.StreamReader, length: int) -> Any:
    left = length
    while left > 0:
        piece = await reader.read(min(left, READ_SIZE))
        if not piece:
            raise asyncio.IncompleteReadError(b"", left)
        left -= len(piece)
        yield piece


async def _until_eof(reader: asyncio.StreamReader) -> Any:
    while piece := await reader.read(READ_SIZE):
        yield piece


async def _answer(
    writer: asyncio.StreamWriter, request: Request, status: int, body: bytes, keep: bool
) -> None:
    head = (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
        "Content-Type: application/json; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"Connection: {'keep-alive' if keep else 'close'}\r\n\r\n"
    )
    writer.write(head.encode("latin-1") + (b"" if request.method == "HEAD" else body))
    await writer.drain()


async def _plain_error(writer: asyncio.StreamWriter, status: int, message: str) -> None:
    body = RequestError(status, message, "invalid_request").body()
    head = (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    with contextlib.suppress(ConnectionError):
        writer.write(head.encode("latin-1") + body)
        await writer.drain()


# --- what observers see --------------------------------------------------------------------------


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
