"""edgekit's public HTTP side: checks each request, relays it to llama-server, streams the answer
back as it comes, and hands the finished exchange to observers.

Standard library only, and blocking sockets with a thread per connection rather than asyncio: a
streamed token costs the relay one read and one write either way, and on a 2-core board every
microsecond the relay spends is taken from llama.cpp's decode threads. Measured per relayed SSE
event (8 streams on loopback, a stand-in upstream), the asyncio relay spent ~90 us of CPU and
this one ~57 us (~175 against ~62 us with one stream). The relay
never holds a response back: every piece llama-server sends (an SSE event of a stream, a block of
a JSON body) is written to the client before the next one is read. What observers get is a copy
taken on the way, handed over after the last byte went out (edgekit.serving.exchange.Observers).
"""

from __future__ import annotations

import contextlib
import io
import logging
import selectors
import socket
import threading
from dataclasses import dataclass
from typing import Any

from edgekit.serving import wire
from edgekit.serving.checks import GENERATING, RequestError, check_api_key, check_request
from edgekit.serving.exchange import Exchange, Observers, generated_text

log = logging.getLogger(__name__)

STOP_WAIT_S = 5.0


@dataclass(frozen=True)
class Upstream:
    """llama-server on loopback, with the key only edgekit knows."""

    host: str
    port: int
    api_key: str

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


class Front:
    """Serves from `start` until `stop`; each connection on a thread of its own."""

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
        self._listener: socket.socket | None = None
        self._wake_r, self._wake_w = socket.socketpair()
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()  # clients and upstreams, cut at stop
        self._threads: set[threading.Thread] = set()
        self._acceptor: threading.Thread | None = None
        self._stopping = False

    def start(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self._listener = sock
        self._acceptor = threading.Thread(target=self._accept, name="edgekit-front", daemon=True)
        self._acceptor.start()

    def stop(self) -> None:
        """Stop accepting, cut every connection (a stream in progress ends with an error at its
        client, and llama-server stops the task), and wait for their threads."""
        with self._lock:
            self._stopping = True
            open_now = list(self._open)
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        for sock in open_now:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        if self._acceptor is not None:
            self._acceptor.join(STOP_WAIT_S)
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(STOP_WAIT_S / max(1, len(threads)))
        self._wake_r.close()
        self._wake_w.close()

    def _accept(self) -> None:
        assert self._listener is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self._listener, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            while not self._stopping:
                for key, _ in selector.select():
                    if key.fileobj is self._wake_r:
                        return
                    try:
                        client, _ = self._listener.accept()
                    except (BlockingIOError, InterruptedError):
                        continue  # another event took it, or it was withdrawn
                    except OSError:
                        log.exception("accept failed")
                        continue
                    self._spawn(client)

    def _spawn(self, client: socket.socket) -> None:
        client.setblocking(True)
        wire.no_delay(client)
        thread = threading.Thread(target=self._connection, args=(client,), daemon=True)
        with self._lock:
            if self._stopping:
                client.close()
                return
            self._open.add(client)
            self._threads.add(thread)
        thread.start()

    def _connection(self, client: socket.socket) -> None:
        try:
            with wire.reader(client) as reader:
                while not self._stopping:
                    request = wire.read_request_head(reader, client)
                    if request is None or not self._exchange(request, reader, client):
                        break
        except (OSError, ValueError):
            pass  # the client left, or sent something that cannot be framed: nothing to answer
        except Exception:  # a bug must cost one connection, never the server
            log.exception("connection failed")
        finally:
            with self._lock:
                self._open.discard(client)
                self._threads.discard(threading.current_thread())
            client.close()

    def _exchange(
        self, request: wire.Request, reader: io.BufferedReader, client: socket.socket
    ) -> bool:
        """Answer one request; True when the connection can carry another."""
        try:
            check_api_key(request.path, request.lookup, self.api_key)
            body = wire.read_body(request, reader, client)
            parsed = check_request(
                request.method, request.path, request.lookup, body, self.n_ctx_slot, self.guarded
            )
        except RequestError as e:
            # An unread body (refused before reading) leaves the connection unusable.
            reusable = e.status not in (401, 413) and request.keep_alive
            wire.answer(client, request, e.status, e.body(), reusable)
            return reusable
        observe = parsed is not None and request.path in GENERATING
        return self._relay(request, body, parsed if observe else None, client)

    def _relay(
        self,
        request: wire.Request,
        body: bytes,
        observed: dict[str, Any] | None,
        client: socket.socket,
    ) -> bool:
        try:
            up = wire.connect(self.upstream.host, self.upstream.port)
        except OSError:
            error = RequestError(
                502, "llama-server is not answering", "upstream_unavailable", "server_error"
            )
            wire.answer(client, request, 502, error.body(), False)
            return False
        with self._lock:
            self._open.add(up)
        copy: list[bytes] | None = [] if observed is not None else None
        try:
            with wire.reader(up) as up_reader:
                up.sendall(self._upstream_head(request, len(body)) + body)
                head = wire.read_response_head(up_reader)
                complete = _relay_body(request, head, up_reader, client, copy)
        except (OSError, ValueError):
            # llama-server went away mid-answer: cut the client off so it sees an error at once
            # instead of waiting for the rest of a body that will never come.
            with contextlib.suppress(OSError):
                client.shutdown(socket.SHUT_RDWR)
            return False
        finally:
            with self._lock:
                self._open.discard(up)
            up.close()  # a client that left: closing makes llama-server stop the task
        if not complete:
            return False
        if observed is not None and copy is not None:
            text = generated_text(b"".join(copy), head.header("content-type"))
            self.observers.hand_off(Exchange(request.path, observed, text, head.status))
        return request.keep_alive and _framed(request, head)

    def _upstream_head(self, request: wire.Request, length: int) -> bytes:
        lines = [f"{request.method} {request.target} HTTP/1.1"]
        for name, value in request.headers:
            low = name.lower()
            if low in wire.HOP_BY_HOP or low in ("authorization", "x-api-key"):
                continue
            lines.append(f"{name}: {value}")
        lines += [
            f"Host: {self.upstream.host}:{self.upstream.port}",
            f"Authorization: Bearer {self.upstream.api_key}",
            f"Content-Length: {length}",
            "Connection: close",
        ]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class ClientLeft(Exception):
    """The client closed its connection while the answer was being relayed."""


def _no_body(request: wire.Request, head: wire.ResponseHead) -> bool:
    return request.method == "HEAD" or head.status in (204, 304) or head.status < 200


def _fixed_length(head: wire.ResponseHead) -> int | None:
    if "chunked" in head.header("transfer-encoding").lower():
        return None
    text = head.header("content-length")
    return int(text) if text.isdigit() else None


def _chunked_down(request: wire.Request, head: wire.ResponseHead) -> bool:
    """Re-framed in chunks for the client: a body of unknown length to an HTTP/1.1 client."""
    return (
        not _no_body(request, head)
        and _fixed_length(head) is None
        and request.version != "HTTP/1.0"
    )


def _framed(request: wire.Request, head: wire.ResponseHead) -> bool:
    """The client can tell where the body ends without the connection closing."""
    return (
        _no_body(request, head) or _fixed_length(head) is not None or _chunked_down(request, head)
    )


def _response_head(request: wire.Request, head: wire.ResponseHead) -> bytes:
    keep = request.keep_alive and _framed(request, head)
    lines = [f"HTTP/1.1 {head.status} {head.reason}"]
    lines += [f"{n}: {v}" for n, v in head.headers if n.lower() not in wire.HOP_BY_HOP]
    length = _fixed_length(head)
    if length is not None and not _no_body(request, head):
        lines.append(f"Content-Length: {length}")
    if _chunked_down(request, head):
        lines.append("Transfer-Encoding: chunked")
    lines.append("Connection: " + ("keep-alive" if keep else "close"))
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _relay_body(
    request: wire.Request,
    head: wire.ResponseHead,
    up: io.BufferedReader,
    client: socket.socket,
    copy: list[bytes] | None,
) -> bool:
    """Send the head and then each piece as it arrives; False if the client went away."""
    try:
        _send(client, _response_head(request, head))
        if _no_body(request, head):
            return True
        length = _fixed_length(head)
        chunked_up = "chunked" in head.header("transfer-encoding").lower()
        if length is not None:
            pieces = wire.fixed(up, length)
        elif chunked_up:
            pieces = wire.chunks(up)
        else:
            pieces = wire.until_eof(up)
        chunked_down = _chunked_down(request, head)
        for piece in pieces:
            if copy is not None:
                copy.append(piece)
            _send(client, b"%x\r\n%b\r\n" % (len(piece), piece) if chunked_down else piece)
        if chunked_down:
            _send(client, b"0\r\n\r\n")
    except ClientLeft:
        return False
    return True


def _send(client: socket.socket, data: bytes) -> None:
    """A failed write is the client's doing; upstream errors must surface as they are."""
    try:
        client.sendall(data)
    except OSError as e:
        raise ClientLeft from e
