"""A worker serves one client at a time, and no other local process can stop it (issue 34,
item 3). Real rpc-server processes, raw sockets on loopback, no fakes.

Before: a second client that connected, said HELLO and gave up stayed queued in rpc-server's
backlog; when the first client left, rpc-server answered the stale one and died of SIGPIPE."""

from __future__ import annotations

import socket
import struct
import time

import pytest

from edgekit.backends.llama_cpp.build import tool_path
from edgekit.backends.llama_cpp.rpc import protocol
from edgekit.backends.llama_cpp.rpc.protocol import (
    BUSY_REPLY,
    CMD_HELLO,
    CONN_CAPS_SIZE,
    QUEUE_WAIT_S,
    Endpoint,
    WorkerBusyError,
    free_port,
    is_answering,
    probe,
    server_command,
    start_server,
)
from tests.fixtures.rpc import rpc_server_or_skip, running_workers

HELLO = bytes([CMD_HELLO]) + struct.pack("<Q", CONN_CAPS_SIZE) + bytes(CONN_CAPS_SIZE)
HELLO_REPLY = 8 + 4 + CONN_CAPS_SIZE


def _client(endpoint: Endpoint) -> socket.socket:
    return socket.create_connection((endpoint.host, endpoint.port), timeout=10)


def _recv_all(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def _hello(sock: socket.socket) -> bytes:
    sock.sendall(HELLO)
    return _recv_all(sock, HELLO_REPLY)


def _ignores_sigpipe(pid: int) -> bool:
    with open(f"/proc/{pid}/status") as f:
        mask = next(int(line.split()[1], 16) for line in f if line.startswith("SigIgn:"))
    return bool(mask & (1 << (13 - 1)))  # SIGPIPE is 13


def test_a_second_client_is_refused_promptly_and_cannot_kill_the_worker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(protocol, "QUEUE_WAIT_S", 1.0)  # the relay reads it per connection
    with running_workers(None) as (worker,):
        assert worker.process is not None and _ignores_sigpipe(worker.process.pid)
        first = _client(worker.endpoint)
        assert len(_hello(first)) == HELLO_REPLY
        start = time.monotonic()
        second = _client(worker.endpoint)
        second.sendall(HELLO)
        refused = _recv_all(second, len(BUSY_REPLY))
        assert refused == BUSY_REPLY
        assert time.monotonic() - start < protocol.QUEUE_WAIT_S + 2
        second.close()
        with pytest.raises(WorkerBusyError, match="serving another client"):
            probe(worker.endpoint)
        # The case: connect, say hello, give up, while the first is still there.
        stale = _client(worker.endpoint)
        stale.sendall(HELLO)
        stale.close()
        first.close()
        time.sleep(protocol.QUEUE_WAIT_S + 0.5)
        assert worker.process.poll() is None, "the worker died"
        assert probe(worker.endpoint).devices  # and serves the next client
        assert worker.relay is not None and worker.relay.refused >= 2


def test_a_silent_client_does_not_hold_the_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(protocol, "FIRST_COMMAND_TIMEOUT_S", 1.0)
    with running_workers(None) as (worker,):
        silent = _client(worker.endpoint)
        time.sleep(0.2)
        try:
            assert probe(worker.endpoint, timeout=QUEUE_WAIT_S + 3).devices
        finally:
            silent.close()


def test_rpc_server_survives_a_peer_that_closed() -> None:
    """rpc-server itself, without edgekit's front: started by start_server, a client that is
    gone when it answers costs it an EPIPE, not its life."""
    rpc_server_or_skip()
    port = free_port()
    endpoint = Endpoint("127.0.0.1", port)
    server = start_server(server_command(tool_path("rpc-server"), "127.0.0.1", port, 1, None))
    try:
        deadline = time.monotonic() + 30
        while not is_answering(endpoint, 0.5) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _ignores_sigpipe(server.pid)
        first = _client(endpoint)
        assert len(_hello(first)) == HELLO_REPLY
        stale = _client(endpoint)  # queued in the backlog
        stale.sendall(HELLO)
        stale.close()
        first.close()
        time.sleep(1.0)
        assert server.poll() is None, f"rpc-server exited with {server.returncode}"
        assert probe(endpoint).devices
    finally:
        server.terminate()
        server.wait(timeout=10)
