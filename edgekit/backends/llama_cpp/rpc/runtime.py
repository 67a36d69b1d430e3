"""A llama.cpp runtime whose layers live on RPC workers, kept in a child process.

Why a child process: ggml-rpc calls GGML_ABORT ("Remote RPC server crashed or returned malformed
response") when a worker's connection breaks, which kills the whole process, and it waits forever
on a worker that stops without closing its socket. In a child, a dead worker costs only the child:
the parent notices (the pipe closes, or no token arrives within the stall timeout), finds which
worker stopped answering, and ends the turn with one clear error. The workers themselves go back
to waiting for a client, so a new session can start as soon as they are back.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from edgekit.backends.base import GenerationResult, RunPlan, SamplingParams, TokenCallback
from edgekit.backends.llama_cpp.lib import loaded_libggml
from edgekit.backends.llama_cpp.rpc.protocol import (
    Endpoint,
    WorkerError,
    WorkerLostError,
    responds,
)
from edgekit.errors import EdgekitError, RuntimeBackendError

# Seconds without a token before the turn is declared lost. A Pi computes a token of a 1B model in
# well under a second; loading (the weights cross the network) gets its own, longer limit.
STALL_TIMEOUT_S = float(os.environ.get("EDGEKIT_RPC_STALL_TIMEOUT", "60"))
LOAD_TIMEOUT_S = float(os.environ.get("EDGEKIT_RPC_LOAD_TIMEOUT", "600"))


@dataclass(frozen=True)
class Offload:
    endpoints: tuple[Endpoint, ...]
    n_gpu_layers: int
    tensor_split: tuple[float, ...]


def register_workers(endpoints: Sequence[Endpoint]) -> None:
    """Make each worker's devices llama.cpp devices, as llama-cli's --rpc does (common/arg.cpp)."""
    import ctypes

    lib = loaded_libggml()
    lib.ggml_backend_reg_by_name.restype = ctypes.c_void_p
    lib.ggml_backend_reg_by_name.argtypes = [ctypes.c_char_p]
    lib.ggml_backend_reg_get_proc_address.restype = ctypes.c_void_p
    lib.ggml_backend_reg_get_proc_address.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.ggml_backend_register.restype = None
    lib.ggml_backend_register.argtypes = [ctypes.c_void_p]
    reg = lib.ggml_backend_reg_by_name(b"RPC")
    if not reg:
        raise RuntimeBackendError(
            "this llama.cpp build has no RPC back end",
            hint="Rebuild with -DGGML_RPC=ON: scripts/setup.sh does.",
        )
    address = lib.ggml_backend_reg_get_proc_address(reg, b"ggml_backend_rpc_add_server")
    add_server = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_char_p)(address)
    for endpoint in endpoints:
        server_reg = add_server(str(endpoint).encode())
        if not server_reg:
            raise WorkerLostError(f"worker {endpoint} reports no devices")
        lib.ggml_backend_register(server_reg)


def _child(conn: Connection, plan: RunPlan, offload: Offload, verbose: bool) -> None:
    from edgekit.backends.llama_cpp.runtime import LlamaCppRuntime

    try:
        register_workers(offload.endpoints)
        runtime = LlamaCppRuntime(
            plan.info,
            plan.profile,
            plan.n_ctx,
            verbose=verbose,
            n_gpu_layers=offload.n_gpu_layers,
            tensor_split=list(offload.tensor_split),
        )
    except EdgekitError as e:
        conn.send(("error", type(e).__name__, e.message, e.hint))
        return
    conn.send(("ready", runtime.notes))
    while True:
        try:
            request = conn.recv()
        except EOFError:
            break
        op = request[0]
        if op == "close":
            break
        try:
            if op == "generate":
                _, tokens, params = request
                result = runtime.generate(tokens, params, lambda p: conn.send(("token", p)))
                conn.send(("done", result))
            else:
                conn.send(("done", getattr(runtime, op)(*request[1:])))
        except EdgekitError as e:
            conn.send(("error", type(e).__name__, e.message, e.hint))
    runtime.close()


class RpcRuntime:
    """The Runtime protocol, served by a LlamaCppRuntime in a child process."""

    def __init__(self, plan: RunPlan, offload: Offload, verbose: bool = False) -> None:
        self.plan, self.offload = plan, offload
        self.notes: list[str] = []
        self.lost: WorkerLostError | None = None
        ctx = multiprocessing.get_context("spawn")
        self._conn, child_conn = ctx.Pipe()
        self._proc = ctx.Process(
            target=_child, args=(child_conn, plan, offload, verbose), daemon=True
        )
        with _real_stderr():
            self._proc.start()
        child_conn.close()
        reply = self._receive(LOAD_TIMEOUT_S, "while loading the model")
        if reply[0] != "ready":
            self._stop()
            _raise_child_error(reply)
        self.notes = list(reply[1])

    @property
    def pid(self) -> int | None:
        return self._proc.pid

    def _receive(self, timeout: float, doing: str, produced: int = 0) -> tuple[Any, ...]:
        if self.lost is not None:
            raise self.lost
        try:
            ready = self._conn.poll(timeout)
            if ready:
                reply: tuple[Any, ...] = self._conn.recv()
                return reply
        except (EOFError, OSError):
            pass
        stalled = not self._proc_dead()
        self._stop()  # first: a worker serves one client, and the others must be free to answer
        self.lost = self._diagnose(doing, produced, stalled)
        raise self.lost

    def _proc_dead(self) -> bool:
        self._proc.join(timeout=0.5)
        return not self._proc.is_alive()

    def _diagnose(self, doing: str, produced: int, stalled: bool) -> WorkerLostError:
        down = [e for e in self.offload.endpoints if not responds(e)]
        after = f" after {produced} tokens" if produced else ""
        if down:
            names = ", ".join(str(e) for e in down)
            what = f"worker {names} stopped answering {doing}{after}"
        elif stalled:
            what = f"no answer from the workers for {STALL_TIMEOUT_S:.0f} s {doing}{after}"
        else:
            what = f"the connection to a worker broke {doing}{after}"
        return WorkerLostError(
            what + "; the turn was ended and the model is no longer loaded",
            hint="Restart the worker (`edgekit worker`) and run again; "
            "EDGEKIT_RPC_STALL_TIMEOUT sets how long to wait for a token.",
        )

    def _call(self, op: str, *args: Any) -> Any:
        if self.lost is not None:
            raise self.lost
        self._conn.send((op, *args))
        reply = self._receive(STALL_TIMEOUT_S, f"during {op}")
        if reply[0] == "error":
            _raise_child_error(reply)
        return reply[1]

    def tokenize(self, text: str) -> list[int]:
        result: list[int] = self._call("tokenize", text)
        return result

    def prompt_tokens(self, text: str) -> list[int]:
        result: list[int] = self._call("prompt_tokens", text)
        return result

    def format_chat(self, messages: Sequence[dict[str, str]]) -> str:
        result: str = self._call("format_chat", list(messages))
        return result

    def generate(
        self, tokens: list[int], params: SamplingParams, on_token: TokenCallback | None = None
    ) -> GenerationResult:
        if self.lost is not None:
            raise self.lost
        self._conn.send(("generate", tokens, params))
        produced = 0
        while True:
            reply = self._receive(STALL_TIMEOUT_S, "during generation", produced)
            if reply[0] == "token":
                produced += 1
                if on_token:
                    on_token(reply[1])
            elif reply[0] == "done":
                result: GenerationResult = reply[1]
                return result
            else:
                _raise_child_error(reply)

    def worker_alive(self) -> dict[str, bool]:
        """Per worker: is this session's connection to it still open? (No probe while loaded: a
        worker serves one client at a time, so it could not answer one while it serves us.)"""
        if self.lost is not None or not self._proc.is_alive():
            return {str(e): responds(e) for e in self.offload.endpoints}
        return connections_alive(self.pid, self.offload.endpoints)

    def close(self) -> None:
        if self._proc.is_alive() and self.lost is None:
            try:
                self._conn.send(("close",))
                self._proc.join(timeout=10)
            except (OSError, BrokenPipeError):
                pass
        self._stop()

    def _stop(self) -> None:
        if self._proc.is_alive():
            self._proc.kill()
        self._proc.join(timeout=5)
        self._conn.close()


@contextlib.contextmanager
def _real_stderr() -> Iterator[None]:
    """multiprocessing hands sys.stderr's fd to its helper process; under Textual, sys.stderr is
    a capture object without a usable fd, so the start fails ("bad value(s) in fds_to_keep")."""
    saved = sys.stderr
    if sys.__stderr__ is not None:
        sys.stderr = sys.__stderr__
    try:
        yield
    finally:
        sys.stderr = saved


def connections_alive(pid: int | None, endpoints: Sequence[Endpoint]) -> dict[str, bool]:
    """ESTABLISHED TCP connections of process `pid` to each worker; a closed worker shows as
    CLOSE_WAIT (it sent FIN) or disappears."""
    import psutil

    alive = {str(e): False for e in endpoints}
    if pid is None:
        return alive
    try:
        conns = psutil.Process(pid).net_connections(kind="inet")
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return alive
    wanted = {(e.host, e.port): str(e) for e in endpoints}
    for c in conns:
        if c.raddr and c.status == psutil.CONN_ESTABLISHED:
            key = wanted.get((c.raddr.ip, c.raddr.port))
            if key:
                alive[key] = True
    return alive


def _raise_child_error(reply: tuple[Any, ...]) -> None:
    from edgekit import errors
    from edgekit.backends.llama_cpp.rpc import protocol as rpc

    _, name, message, hint = reply
    cls = getattr(errors, name, None) or getattr(rpc, name, None)
    if not (isinstance(cls, type) and issubclass(cls, EdgekitError)):
        cls = WorkerError
    raise cls(message, hint)
