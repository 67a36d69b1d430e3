"""llama.cpp's RPC back end from edgekit's side: the workers (`rpc-server`), and what we ask them.

No protocol of edgekit's own: a worker is llama.cpp's `rpc-server`, and the client is ggml-rpc
inside libllama. This module speaks the few commands of that protocol (ggml-rpc.cpp) that a client
needs *before* handing the endpoints to llama.cpp: HELLO (the protocol version), DEVICE_COUNT and
GET_DEVICE_MEMORY. llama.cpp itself aborts the whole process when a worker is unreachable or speaks
another version, so these checks are what turns a crash into one clear message.

`RpcRelay` sits in front of a worker started with `--mem`: it forwards every byte unchanged except
GET_DEVICE_MEMORY replies, which it caps at the worker's declared memory, so that llama.cpp's own
split and edgekit's memory check both see what the owner of the worker allowed. It also counts the
bytes that cross it, which is how benchmarks/rpc_split.py measures traffic per token.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
import struct
import subprocess
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from edgekit.errors import RuntimeBackendError

# ggml-rpc.h of the llama.cpp that llama-cpp-python 0.3.36 vendors (RPC_PROTO_*_VERSION);
# tests/backends/llama_cpp/rpc/test_workers.py checks these against the vendored header.
RPC_PROTOCOL = (7, 0, 0)
DEFAULT_PORT = 50052

# enum rpc_cmd in ggml-rpc.cpp (HELLO is pinned to 14 across versions).
CMD_GET_DEVICE_MEMORY = 11
CMD_HELLO = 14
CMD_DEVICE_COUNT = 15
CONN_CAPS_SIZE = 24  # RPC_CONN_CAPS_SIZE (transport.h): zeros ask for plain TCP
# What edgekit's worker front sends a client while another holds the worker, then closes. The
# protocol has no error reply; read as a reply's u64 size it is absurd, so a llama.cpp client
# fails at once, and edgekit's probe recognises it and says why.
BUSY_REPLY = b"EDGEKIT-BUSY: this worker serves another client; one at a time\n"
# How long a new client waits for the one before it to leave before it is refused: edgekit's own
# client probes a worker and closes, then llama.cpp connects at once.
QUEUE_WAIT_S = 3.0
# A client must send its first command within this, or it is dropped: a connection that says
# nothing would otherwise hold the worker for every other client.
FIRST_COMMAND_TIMEOUT_S = 10.0
_U64 = struct.Struct("<Q")


class WorkerError(RuntimeBackendError):
    """An RPC worker cannot be used: unreachable, another version, or it stopped answering."""


class WorkerUnreachableError(WorkerError):
    pass


class WorkerVersionError(WorkerError):
    pass


class WorkerBusyError(WorkerError):
    """The worker is serving another client."""


class WorkerLostError(WorkerError):
    """A worker stopped answering while a model was loaded on it."""


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def is_loopback(self) -> bool:
        return is_loopback(self.host)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_endpoint(text: str) -> Endpoint:
    """HOST:PORT (or [IPv6]:PORT) as llama.cpp's --rpc takes it."""
    raw = text.strip()
    host, sep, port = raw.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise WorkerError(
            f"{raw!r} is not a worker address",
            hint="Give workers as HOST:PORT, comma separated: "
            "--rpc 127.0.0.1:50052,127.0.0.1:50053",
        )
    return Endpoint(host, int(port))


def parse_endpoints(values: str | Sequence[str]) -> list[Endpoint]:
    items = (
        values.split(",") if isinstance(values, str) else [v for x in values for v in x.split(",")]
    )
    endpoints = [parse_endpoint(v) for v in items if v.strip()]
    if len({str(e) for e in endpoints}) != len(endpoints):
        raise WorkerError("a worker is listed twice", hint="List each HOST:PORT once.")
    return endpoints


@dataclass(frozen=True)
class DeviceMemory:
    free: int
    total: int


@dataclass(frozen=True)
class WorkerStatus:
    endpoint: Endpoint
    version: tuple[int, int, int]
    devices: tuple[DeviceMemory, ...]

    @property
    def free(self) -> int:
        return sum(d.free for d in self.devices)


def compatible(server: tuple[int, int, int], client: tuple[int, int, int] = RPC_PROTOCOL) -> bool:
    """ggml-rpc's own rule (negotiate_hello): same major, server minor not newer than ours."""
    return server[0] == client[0] and server[1] <= client[1]


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    chunks, got = [], 0
    while got < n:
        chunk = sock.recv(n - got)
        if not chunk:
            raise ConnectionError("closed by the worker")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


class _BusyReply(ConnectionError):
    pass


def _command(sock: socket.socket, cmd: int, payload: bytes, reply_size: int) -> bytes:
    sock.sendall(bytes([cmd]) + _U64.pack(len(payload)) + payload)
    head = _recv_exact(sock, 8)
    if head == BUSY_REPLY[:8]:
        raise _BusyReply()
    size = _U64.unpack(head)[0]
    if size != reply_size:
        raise ConnectionError(f"reply of {size} bytes where {reply_size} were expected")
    return _recv_exact(sock, size)


def _legacy_version(endpoint: Endpoint, timeout: float) -> tuple[int, int, int] | None:
    """Versions before 3.x answered HELLO with an empty request and a 3-byte reply."""
    try:
        with socket.create_connection((endpoint.host, endpoint.port), timeout=timeout) as sock:
            reply = _command(sock, CMD_HELLO, b"", 3)
            return reply[0], reply[1], reply[2]
    except (OSError, ConnectionError):
        return None


def probe(endpoint: Endpoint, timeout: float = 5.0) -> WorkerStatus:
    """Ask a worker its protocol version and memory, as llama.cpp would, but fail politely.

    A worker serves one client at a time: while a model is loaded on it, it does not answer
    anyone else, so this is for before loading (or after a failure), not for liveness.
    """
    try:
        sock = socket.create_connection((endpoint.host, endpoint.port), timeout=timeout)
    except TimeoutError:
        raise WorkerUnreachableError(
            f"worker {endpoint} did not accept a connection within {timeout:.0f} s",
            hint="Check the address and that `edgekit worker` runs there (and no firewall).",
        ) from None
    except OSError as e:
        raise WorkerUnreachableError(
            f"no worker answers at {endpoint}: {e.strerror or e}",
            hint=f"Start one there with `edgekit worker --port {endpoint.port}`, or fix the port.",
        ) from None
    with sock:
        try:
            hello = _command(sock, CMD_HELLO, bytes(CONN_CAPS_SIZE), 4 + CONN_CAPS_SIZE)
        except _BusyReply:
            raise WorkerBusyError(
                f"worker {endpoint} is serving another client (a worker serves one at a time)",
                hint="Wait until that client's run ends, or start another worker.",
            ) from None
        except TimeoutError:
            raise WorkerUnreachableError(
                f"worker {endpoint} accepted the connection but did not answer within "
                f"{timeout:.0f} s",
                hint="It may be serving another client (a worker serves one at a time), "
                "or it is stuck; restart it.",
            ) from None
        except (OSError, ConnectionError):
            hello = b""
        version = (hello[0], hello[1], hello[2]) if hello else _legacy_version(endpoint, timeout)
        if version is None or not compatible(version):
            _raise_version(endpoint, version)
        assert version is not None
        try:
            (count,) = struct.unpack("<I", _command(sock, CMD_DEVICE_COUNT, b"", 4))
            devices = []
            for i in range(count):
                free, total = struct.unpack(
                    "<QQ", _command(sock, CMD_GET_DEVICE_MEMORY, struct.pack("<I", i), 16)
                )
                devices.append(DeviceMemory(free, total))
        except (OSError, ConnectionError) as e:
            raise WorkerLostError(f"worker {endpoint} stopped answering: {e}") from None
    return WorkerStatus(endpoint, version, tuple(devices))


def _raise_version(endpoint: Endpoint, version: tuple[int, int, int] | None) -> None:
    ours = ".".join(map(str, RPC_PROTOCOL))
    theirs = "an unknown version" if version is None else ".".join(map(str, version))
    raise WorkerVersionError(
        f"worker {endpoint} speaks RPC protocol {theirs}; this llama.cpp speaks {ours}",
        hint="Build the worker from the same llama.cpp as this machine: run "
        "scripts/setup.sh there (same edgekit version), then `edgekit worker`.",
    )


def probe_all(endpoints: list[Endpoint], timeout: float = 5.0) -> list[WorkerStatus]:
    return [probe(e, timeout) for e in endpoints]


def responds(endpoint: Endpoint, timeout: float = 2.0) -> bool:
    """Whether a worker answers HELLO: only meaningful while no session holds it."""
    try:
        probe(endpoint, timeout)
        return True
    except WorkerError:
        return False


def is_answering(endpoint: Endpoint, timeout: float = 1.0) -> bool:
    """Whether something still accepts connections at the worker's address."""
    try:
        with socket.create_connection((endpoint.host, endpoint.port), timeout=timeout):
            return True
    except OSError:
        return False


# --- the worker side ---------------------------------------------------------------------------


def server_command(
    binary: Path, host: str, port: int, threads: int, device: str | None, cache: bool = False
) -> list[str]:
    """rpc-server's flags (tools/rpc/rpc-server.cpp): -H host -p port -t threads [-d dev] [-c]."""
    cmd = [str(binary), "-H", host, "-p", str(port), "-t", str(threads)]
    if device:
        cmd += ["-d", device]
    if cache:
        cmd.append("-c")
    return cmd


def start_server(cmd: list[str]) -> subprocess.Popen[bytes]:
    """rpc-server with SIGPIPE ignored, so that a client that closed cannot kill it: Python
    ignores SIGPIPE itself, and restore_signals=False keeps that disposition across exec (an
    ignored signal stays ignored); rpc-server then sees EPIPE, drops that client and goes on."""
    return subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        restore_signals=False,
        env={**os.environ, "GGML_NO_BACKTRACE": "1"},
    )


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


class RpcRelay:
    """The worker's front: forwards one listening address to rpc-server, one client at a time;
    caps its reported memory (mem_cap); counts bytes.

    rpc-server serves one client and queues the others in its listen backlog; when the first
    left, it answered a queued client that had already given up and died of SIGPIPE (3 of 3),
    and one idle connection held it for everyone. Here a second client waits up to QUEUE_WAIT_S
    for the first to leave, and is otherwise told BUSY_REPLY and closed, never reaching
    rpc-server; a client that sends nothing within FIRST_COMMAND_TIMEOUT_S is dropped.

    Framing (ggml-rpc.cpp): a command is 1 byte + u64 size + payload; a reply is u64 size +
    payload. The client (ggml-rpc's dispatcher) waits for the reply of GET_DEVICE_MEMORY before
    it sends anything else, so the first bytes back after that command are its reply.
    """

    def __init__(self, listen: Endpoint, target: Endpoint, mem_cap: int | None = None) -> None:
        self.listen, self.target, self.mem_cap = listen, target, mem_cap
        self.bytes_to_worker = 0
        self.bytes_from_worker = 0
        self._lock = threading.Lock()
        family = socket.AF_INET6 if ":" in listen.host else socket.AF_INET
        self._server = socket.socket(family, socket.SOCK_STREAM)
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind((listen.host, listen.port))
        self._server.listen(8)
        self._closed = threading.Event()
        self._conns: list[socket.socket] = []
        self._free = threading.Condition()
        self._active = False
        self.refused = 0
        self.on_refuse: Callable[[str], None] | None = None  # told the refused client's address

    @property
    def port(self) -> int:
        port: int = self._server.getsockname()[1]
        return port

    def serve_forever(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._admit, args=(client,), daemon=True).start()

    def start(self) -> RpcRelay:
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def close(self) -> None:
        self._closed.set()
        self._server.close()
        for conn in list(self._conns):
            _shutdown(conn)

    def _count(self, to_worker: int = 0, from_worker: int = 0) -> None:
        with self._lock:
            self.bytes_to_worker += to_worker
            self.bytes_from_worker += from_worker

    def _admit(self, client: socket.socket) -> None:
        with self._free:
            admitted = self._free.wait_for(lambda: not self._active, timeout=QUEUE_WAIT_S)
            self._active = self._active or admitted
        if not admitted:
            self._refuse(client)
            return
        try:
            self._serve(client)
        finally:
            with self._free:
                self._active = False
                self._free.notify_all()

    def _refuse(self, client: socket.socket) -> None:
        with self._lock:
            self.refused += 1
        if self.on_refuse is not None:
            with contextlib.suppress(OSError):
                self.on_refuse(":".join(map(str, client.getpeername()[:2])))
        try:
            client.settimeout(1.0)
            client.sendall(BUSY_REPLY)
            client.shutdown(socket.SHUT_WR)
            # Read what the client sent before closing: closing on unread bytes sends a reset,
            # which can discard the reply before the client reads it.
            while client.recv(1 << 16):
                pass
        except OSError:
            pass
        finally:
            client.close()

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection((self.target.host, self.target.port))
        except OSError:
            client.close()
            return
        for s in (client, upstream):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._conns += [client, upstream]
        pending = threading.Event()  # a GET_DEVICE_MEMORY reply is due
        back = threading.Thread(target=self._replies, args=(upstream, client, pending), daemon=True)
        back.start()
        try:
            self._commands(client, upstream, pending)
        except (OSError, ConnectionError):
            pass
        finally:
            _shutdown(client)
            _shutdown(upstream)
            back.join(timeout=5)
            for s in (client, upstream):
                s.close()
                if s in self._conns:
                    self._conns.remove(s)

    def _commands(
        self, client: socket.socket, upstream: socket.socket, pending: threading.Event
    ) -> None:
        client.settimeout(FIRST_COMMAND_TIMEOUT_S)
        first = True
        while True:
            head = _recv_exact(client, 9)
            if first:
                client.settimeout(None)
                first = False
            size = _U64.unpack_from(head, 1)[0]
            if head[0] == CMD_GET_DEVICE_MEMORY and self.mem_cap is not None:
                pending.set()
            upstream.sendall(head)
            left = size
            while left:
                chunk = client.recv(min(left, 1 << 20))
                if not chunk:
                    raise ConnectionError("client closed")
                upstream.sendall(chunk)
                left -= len(chunk)
            self._count(to_worker=9 + size)

    def _replies(
        self, upstream: socket.socket, client: socket.socket, pending: threading.Event
    ) -> None:
        try:
            while True:
                chunk = upstream.recv(1 << 20)
                if not chunk:
                    break
                # `pending` is set before the command goes upstream, so it is set by the time
                # its reply arrives, and no earlier reply bytes can be left unforwarded.
                if pending.is_set():
                    if len(chunk) < 24:
                        chunk += _recv_exact(upstream, 24 - len(chunk))
                    pending.clear()
                    chunk = self._capped(chunk[:24]) + chunk[24:]
                client.sendall(chunk)
                self._count(from_worker=len(chunk))
        except (OSError, ConnectionError):
            pass
        finally:
            _shutdown(client)

    def _capped(self, reply: bytes) -> bytes:
        assert self.mem_cap is not None
        free, total = struct.unpack_from("<QQ", reply, 8)
        return reply[:8] + struct.pack("<QQ", min(free, self.mem_cap), min(total, self.mem_cap))


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
