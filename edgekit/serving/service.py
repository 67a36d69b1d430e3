"""`edgekit serve` from plan to shutdown: check the fit for every slot, start llama-server on a
private loopback port, put the front on the user's address, and stop both together.

Order matters for the user: the public address is bound before the model loads (a port in use is
reported at once, not after a minute of loading), llama-server must answer /health before the
address is announced, and a stop (Ctrl-C, SIGTERM, or llama-server dying) closes the front first,
then the server, so no process outlives the command.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
import signal
import socket
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from edgekit.backends.llama_cpp.server import (
    Offload,
    ServerConfig,
    ServerProcess,
    server_argv,
    slot_context,
)
from edgekit.errors import OptionError, UnsupportedModelError
from edgekit.serving.exchange import Observers
from edgekit.serving.front import Front, Upstream

if TYPE_CHECKING:
    from edgekit.backends.base import RunPlan
    from edgekit.backends.llama_cpp.rpc.pool import PoolPlan

LOAD_TIMEOUT_S = 600.0  # a big model from a slow SD card takes minutes
MAX_SLOTS = 256  # llama.cpp's LLAMA_MAX_SEQ


@dataclass(frozen=True)
class ServePlan:
    run: RunPlan  # its estimate counts every slot's KV cache
    slots: int
    pool: PoolPlan | None = None

    @property
    def n_ctx_slot(self) -> int:
        return slot_context(self.run.n_ctx)


@dataclass(frozen=True)
class Address:
    host: str
    port: int
    api_key: str | None

    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


@dataclass
class Running:
    """What the front end of the command prints once the server answers."""

    plan: ServePlan
    url: str
    server_pid: int
    log_path: Path
    adapter: Path | None


def check_slots(slots: int) -> None:
    if not 1 <= slots <= MAX_SLOTS:
        raise OptionError(
            f"--parallel must be between 1 and {MAX_SLOTS}, not {slots}",
            hint="Each slot serves one request at a time with its own context.",
        )


def plan_serve(
    model: str | Path | None,
    device: str,
    ctx: int | None,
    slots: int,
    rpc: str | None = None,
    threads: int | None = None,
) -> ServePlan:
    """The run plan with every slot's KV cache counted; refuses what will not fit, before start.

    ctx is one slot's context (what one request can use); llama-server gets slots x ctx.
    """
    from edgekit.backends import backend_for
    from edgekit.backends.base import RunPlan
    from edgekit.backends.runner import resolve_model
    from edgekit.devices.memory import check_fit, estimate_memory
    from edgekit.devices.profiles import load_profile
    from edgekit.gguf.reader import load_model_info

    check_slots(slots)
    path = resolve_model(model)
    if backend_for(path).name != "llama_cpp":
        raise UnsupportedModelError(
            f"{path.name} is not a GGUF model; edgekit serve runs llama.cpp's llama-server",
            hint="Convert it to GGUF with `edgekit convert`.",
        )
    profile = load_profile(device)
    if rpc or profile.rpc:
        from edgekit.backends.llama_cpp.rpc.pool import plan_pool

        pool = plan_pool(path, device, ctx, rpc, slots=slots)
        return ServePlan(replace(pool.run, threads=threads), slots, pool)
    info = load_model_info(path)
    n_ctx = ctx or min(profile.context, info.context_length)
    estimate = estimate_memory(info, profile, n_ctx, slots=slots)
    check_fit(estimate, info, profile)
    return ServePlan(RunPlan(info, profile, n_ctx, estimate, threads=threads), slots)


def check_exposure(host: str, api_key: str | None) -> None:
    """A server reachable from other machines must ask for a key: refuse it without one."""
    if api_key is not None and not api_key.strip():
        raise OptionError("--api-key is empty", hint="Pass a long random string.")
    if api_key is None and not is_loopback(host):
        raise OptionError(
            f"--host {host} makes the model reachable from other machines, without a key",
            hint="Add --api-key KEY (clients send 'Authorization: Bearer KEY'), or keep the "
            "default --host 127.0.0.1.",
        )


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything


def bind(host: str, port: int) -> socket.socket:
    """The public socket, bound before the model loads so a taken port fails fast."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family = infos[0][0]
        return socket.create_server((host, port), family=family, reuse_port=False, backlog=128)
    except socket.gaierror as e:
        raise OptionError(
            f"--host {host} is not an address of this machine ({e.strerror})"
        ) from None
    except OSError as e:
        reason = os.strerror(e.errno) if e.errno else str(e)
        raise OptionError(
            f"cannot listen on {host}:{port}: {reason}",
            hint="Another program holds the port: choose another with --port, or stop it."
            if e.errno in (98, 48)  # EADDRINUSE on Linux, macOS
            else "Choose an address of this machine with --host.",
        ) from None


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _offload(pool: PoolPlan) -> Offload:
    return Offload(
        endpoints=tuple(str(w.endpoint) for w in pool.workers),
        n_gpu_layers=pool.split.n_gpu_layers,
        tensor_split=pool.split.tensor_split,
    )


class _Stop(Exception):
    """Ctrl-C or SIGTERM while the model loads: unwinds, stopping what has started."""


@contextlib.contextmanager
def _signals_unwind() -> Iterator[None]:
    """Both signals stop the load, also where SIGINT came in ignored (a background job of a
    script), as `edgekit worker` does."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise _Stop

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def serve(
    plan: ServePlan,
    address: Address,
    on_ready: Callable[[Running], None],
    bias_adapter: str | None = None,
    verbose: bool = False,
    log_dir: Path | None = None,
    on_loading: Callable[[], None] | None = None,
) -> None:
    """Run until Ctrl-C / SIGTERM (returns) or until llama-server dies (raises with its log)."""
    check_exposure(address.host, address.api_key)
    sock = bind(address.host, address.port)
    if on_loading is not None:
        on_loading()
    public = Address(address.host, sock.getsockname()[1], address.api_key)
    upstream = Upstream("127.0.0.1", free_loopback_port(), secrets.token_urlsafe(24))
    adapter: Path | None = None
    extra: tuple[str, ...] = ()
    if bias_adapter is not None:
        from edgekit.serving.guard import guard_server_args, resolve_bias_adapter

        adapter = resolve_bias_adapter(bias_adapter, plan.run.info.path)
        extra = tuple(guard_server_args(adapter))
    config = ServerConfig(
        plan=plan.run,
        slots=plan.slots,
        port=upstream.port,
        api_key=upstream.api_key,
        host=upstream.host,
        offload=_offload(plan.pool) if plan.pool is not None else None,
        extra_args=extra,
    )
    folder = log_dir or Path(tempfile.gettempdir())
    log_path = folder / f"edgekit-serve-{public.port}.log"
    observers = Observers()
    guard: Any = None
    try:
        with _signals_unwind():
            server = ServerProcess(server_argv(config), log_path, verbose=verbose)
            try:
                server.wait_healthy(upstream.url, LOAD_TIMEOUT_S)
                if bias_adapter is not None:
                    from edgekit.serving.guard import start_guard

                    guard = start_guard(
                        model=plan.run.info.path,
                        adapter_spec=bias_adapter,
                        server_url=upstream.url,
                        api_key=upstream.api_key,
                    )
                    observers.add(guard.observe)
            except BaseException:
                server.stop()
                raise
        running = Running(plan, public.url(), server.pid, log_path, adapter)
        front = Front(upstream, public.api_key, plan.n_ctx_slot, observers, guard is not None)
        try:
            died = _run_front(front, sock, server, lambda: on_ready(running))
        finally:
            server.stop()
        if died:
            raise server.died_error("while serving")
    except _Stop:
        return
    finally:
        sock.close()
        observers.close()
        if guard is not None:
            guard.close()


def _run_front(
    front: Front, sock: socket.socket, server: ServerProcess, ready: Callable[[], None]
) -> bool:
    """Serve until a stop signal (False) or the server's death (True)."""
    stop = threading.Event()

    def on_exit() -> None:
        server.proc.wait()
        stop.set()

    threading.Thread(target=on_exit, name="llama-server-watch", daemon=True).start()
    with _signals_set(stop):
        front.start(sock)
        try:
            ready()
            while not stop.wait(1.0):  # a timeout keeps the main thread open to signals
                pass
        finally:
            front.stop()
    return server.exit_code() is not None


@contextlib.contextmanager
def _signals_set(stop: threading.Event) -> Iterator[None]:
    """Ctrl-C and SIGTERM end the serving loop instead of raising in whatever it is doing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {
        s: signal.signal(s, lambda signum, frame: stop.set())
        for s in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
