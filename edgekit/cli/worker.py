"""`edgekit worker`: lend this machine's memory and cores to another's `edgekit run --rpc`."""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING, Annotated

import typer

from edgekit.cli.options import JsonOpt
from edgekit.cli.render import err_console, print_json, user_errors

if TYPE_CHECKING:
    from edgekit.backends.llama_cpp.rpc.worker import Worker


@user_errors
def worker_command(
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on (loopback unless you say so).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", "-p", help="Port to listen on.")] = 50052,
    mem: Annotated[
        int | None,
        typer.Option("--mem", help="MiB this worker offers; clients split layers by it."),
    ] = None,
    device: Annotated[
        str, typer.Option("--device", "-d", help="Device profile (threads).")
    ] = "cpu",
    backend_device: Annotated[
        str | None,
        typer.Option("--backend-device", help="llama.cpp device(s) to expose, e.g. CUDA0."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Run llama.cpp's rpc-server with a device profile's settings until Ctrl-C."""
    from edgekit.backends.llama_cpp.rpc.protocol import Endpoint, is_loopback
    from edgekit.backends.llama_cpp.rpc.worker import NO_AUTH_WARNING, Worker, describe
    from edgekit.devices.profiles import MiB, load_profile

    profile = load_profile(device)
    endpoint = Endpoint(host, port)
    if not is_loopback(host):
        err_console.print(
            f"[bold yellow]warning:[/bold yellow] {NO_AUTH_WARNING.format(address=endpoint)}"
        )
    worker = Worker(
        endpoint, profile, None if mem is None else mem * MiB, backend_device=backend_device
    )
    # SIGTERM (systemd, kill) ends the worker as cleanly as Ctrl-C does; SIGINT too when a shell
    # started us in the background with it ignored.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        status = worker.start()
        if worker.relay is not None and not as_json:
            worker.relay.on_refuse = lambda peer: err_console.print(
                f"[yellow]refused {peer}[/yellow]: busy with another client (one at a time)"
            )
        _announce(worker, describe(status, worker.mem_cap), mem, as_json)
        code = worker.wait()
        from edgekit.backends.llama_cpp.rpc.protocol import WorkerError

        raise WorkerError(
            f"rpc-server exited with code {code}: " + " | ".join(list(worker.log)[-4:])
        )
    except KeyboardInterrupt:
        if not as_json:
            err_console.print("[dim]worker stopped[/dim]")
    finally:
        worker.stop()


def _announce(worker: Worker, info: dict[str, object], mem: int | None, as_json: bool) -> None:
    """The worker is listening: its address, protocol, threads and the memory it offers."""
    if as_json:
        print_json(
            {"listening": True, "pid": worker.process.pid if worker.process else None, **info}
        )
        return
    memory = ", ".join(f"{d['free_mib']:,} MiB free" for d in info["devices"])  # type: ignore[attr-defined]
    cap = f" (capped by --mem {mem:,} MiB)" if mem else ""
    endpoint, profile = worker.endpoint, worker.profile
    err_console.print(
        f"[green]worker listening on {endpoint}[/green]: rpc-server protocol "
        f"{info['protocol']}, {profile.threads} threads ({profile.name}), {memory}{cap}"
    )
    err_console.print(f"[dim]use it with: edgekit run --rpc {endpoint}; Ctrl-C stops[/dim]")
