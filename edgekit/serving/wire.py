"""HTTP/1.1 framing over blocking sockets: as much of it as the front needs, from both sides.

Reads go through a buffered file over the socket (`socket.makefile("rb")`), so a line or a chunk
costs no system call when it is already in the buffer; writes are one `sendall` per piece, so a
piece is on its way before the next one is read.
"""

from __future__ import annotations

import contextlib
import io
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import cast

from edgekit.serving.checks import MAX_BODY_BYTES, RequestError, check_body_size

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


class Truncated(ConnectionError):
    """The peer closed the connection in the middle of a message."""


class HeadTooLarge(ValueError):
    """A request head over MAX_HEAD_BYTES."""


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


@dataclass(frozen=True)
class ResponseHead:
    """llama-server's status line and headers, as read."""

    status: int
    reason: str
    headers: list[tuple[str, str]]

    def header(self, name: str) -> str:
        return next((v for n, v in reversed(self.headers) if n.lower() == name), "")


def connect(host: str, port: int) -> socket.socket:
    sock = socket.create_connection((host, port))
    no_delay(sock)
    return sock


def reader(sock: socket.socket) -> io.BufferedReader:
    """Buffered reads of the socket; close it before the socket, which stays open until then."""
    return cast(io.BufferedReader, sock.makefile("rb", buffering=READ_SIZE))


def no_delay(sock: socket.socket) -> None:
    """Each streamed piece is a small write after another: Nagle's algorithm would hold it back
    until the last one is acknowledged (up to 40 ms with delayed ACKs)."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def read_exactly(reader: io.BufferedReader, size: int) -> bytes:
    data = reader.read(size)
    if len(data) < size:
        raise Truncated(f"{len(data)} of {size} bytes")
    return data


def _head_lines(reader: io.BufferedReader) -> list[str] | None:
    """The lines of a head up to the blank line; None when the peer closed before a first byte."""
    lines: list[str] = []
    total = 0
    while True:
        line = reader.readline(MAX_HEAD_BYTES + 1 - total)
        total += len(line)
        if total > MAX_HEAD_BYTES:
            raise HeadTooLarge
        if not line.endswith(b"\n"):
            if lines or line.strip():
                raise Truncated("in a head")
            return None
        text = line.decode("latin-1").rstrip("\r\n")
        if not text:
            if lines:
                return lines
            continue  # blank lines before a request line are allowed (RFC 9112, 2.2)
        lines.append(text)


def _parse_headers(lines: list[str]) -> list[tuple[str, str]]:
    headers = []
    for line in lines:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise ValueError(f"malformed header line {line[:60]!r}")
        headers.append((name, value.strip()))
    return headers


def read_request_head(reader: io.BufferedReader, client: socket.socket) -> Request | None:
    """The next request's head; None when the connection is over (closed, or answered with an
    error that ends it)."""
    try:
        lines = _head_lines(reader)
    except HeadTooLarge:
        plain_error(client, 431, "request headers are over 64 KiB")
        return None
    if lines is None:
        return None  # the client closed an idle keep-alive connection
    try:
        method, target, version = lines[0].split(" ")
        if not version.startswith("HTTP/1.") or not target.startswith("/"):
            raise ValueError(lines[0][:60])
        headers = _parse_headers(lines[1:])
    except ValueError:
        plain_error(client, 400, "malformed HTTP request")
        return None
    return Request(method, target, version, headers, {n.lower(): v for n, v in headers})


def read_body(request: Request, reader: io.BufferedReader, client: socket.socket) -> bytes:
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
        client.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")  # curl waits a second for it otherwise
    if not chunked:
        return read_exactly(reader, length)
    parts: list[bytes] = []
    for piece in chunks(reader):
        parts.append(piece)
        check_body_size(sum(map(len, parts)))
    return b"".join(parts)


def chunks(reader: io.BufferedReader) -> Iterator[bytes]:
    """The pieces of a chunked body, each as soon as it has arrived whole."""
    while True:
        size_line = reader.readline(1024)
        if not size_line.endswith(b"\n"):
            raise Truncated("in a chunk size")
        size = int(size_line.split(b";", 1)[0].strip(), 16)  # ValueError: framing is broken
        if size == 0:
            while (line := reader.readline(MAX_HEAD_BYTES)) not in (b"\r\n", b"\n"):
                if not line:
                    raise Truncated("in the trailers")
            return  # trailers: nothing edgekit passes on
        if size > MAX_BODY_BYTES:
            raise ValueError(f"chunk of {size} bytes")
        yield read_exactly(reader, size)
        read_exactly(reader, 2)


def fixed(reader: io.BufferedReader, length: int) -> Iterator[bytes]:
    left = length
    while left > 0:
        piece = reader.read1(min(left, READ_SIZE))
        if not piece:
            raise Truncated(f"{left} bytes short")
        left -= len(piece)
        yield piece


def until_eof(reader: io.BufferedReader) -> Iterator[bytes]:
    while piece := reader.read1(READ_SIZE):
        yield piece


def read_response_head(reader: io.BufferedReader) -> ResponseHead:
    lines = _head_lines(reader)
    if lines is None:
        raise Truncated("no answer")
    version, _, rest = lines[0].partition(" ")
    code, _, reason = rest.partition(" ")
    if not version.startswith("HTTP/1.") or not code.isdigit():
        raise ValueError(f"llama-server answered {lines[0][:60]!r}")
    return ResponseHead(int(code), reason, _parse_headers(lines[1:]))


def answer(client: socket.socket, request: Request, status: int, body: bytes, keep: bool) -> None:
    head = (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
        "Content-Type: application/json; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"Connection: {'keep-alive' if keep else 'close'}\r\n\r\n"
    )
    client.sendall(head.encode("latin-1") + (b"" if request.method == "HEAD" else body))


def plain_error(client: socket.socket, status: int, message: str) -> None:
    body = RequestError(status, message, "invalid_request").body()
    head = (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    with contextlib.suppress(OSError):
        client.sendall(head.encode("latin-1") + body)
