"""`edgekit serve`: the model as a local OpenAI-compatible service, on llama.cpp's llama-server."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer
from rich.text import Text

from edgekit.cli.render import err_console, mib, user_errors, write_stdout
from edgekit.errors import OptionError

if TYPE_CHECKING:
    from edgekit.serving.service import Running


@user_errors
def serve_command(
    model: Annotated[
        str | None, typer.Argument(help="A .gguf file; the default model if omitted.")
    ] = None,
    device: Annotated[str, typer.Option("--device", "-d", help="Device profile.")] = "cpu",
    host: Annotated[
        str,
        typer.Option(
            "--host", help="Address to listen on; other than loopback it needs --api-key."
        ),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", "-p", min=0, max=65535, help="Port.")] = 8080,
    parallel: Annotated[
        int,
        typer.Option(
            "--parallel", "-np", help="Requests served at once (slots, each with --ctx tokens)."
        ),
    ] = 4,
    ctx: Annotated[
        int | None,
        typer.Option(
            "--ctx", "-c", help="Context of each slot in tokens (default: the profile's)."
        ),
    ] = None,
    rpc: Annotated[
        str | None,
        typer.Option(
            "--rpc",
            help="RPC workers HOST:PORT[,HOST:PORT...] that hold layers (`edgekit worker`).",
        ),
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key",
            envvar="EDGEKIT_API_KEY",
            help="Key every request must send (Authorization: Bearer KEY).",
        ),
    ] = None,
    bias_adapter: Annotated[
        str | None,
        typer.Option(
            "--bias-adapter",
            help="Erasure adapter FILE, or 'auto' for the one `edgekit bias --mitigate` "
            "calibrated; the guard sets its scale from the served outputs.",
        ),
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option(
            "--threads", "-t", min=1, help="llama-server's threads (default: the profile's)."
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object once serving.")
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", help="Show llama-server's log instead of a log file.")
    ] = False,
) -> None:
    """Serve a model over OpenAI's HTTP API until Ctrl-C (llama.cpp's llama-server)."""
    from edgekit.serving.service import Address, check_exposure, check_slots, plan_serve, serve

    if ctx is not None and ctx < 1:
        raise OptionError(f"--ctx must be at least 1, not {ctx}")
    check_slots(parallel)
    check_exposure(host, api_key)
    plan = plan_serve(model, device, ctx, parallel, rpc=rpc, threads=threads)
    if plan.pool is not None and not as_json:
        from edgekit.cli.pool import split_table

        err_console.print(split_table(plan.pool))

    def loading() -> None:
        if not as_json:
            err_console.print(
                Text(f"loading {plan.run.info.name} in llama-server ...", style="dim")
            )

    def ready(running: Running) -> None:
        if as_json:  # one line, so a script can read it while the server runs
            write_stdout(json.dumps(_ready_dict(running, api_key is not None)) + "\n")
        else:
            _announce(running, api_key is not None)

    serve(
        plan,
        Address(host, port, api_key),
        ready,
        bias_adapter=bias_adapter,
        verbose=verbose,
        on_loading=loading,
    )
    if not as_json:
        err_console.print("[dim]stopped[/dim]")


def _ready_dict(running: Running, keyed: bool) -> dict[str, object]:
    plan = running.plan
    return {
        "url": running.url,
        "openai_base_url": running.url + "/v1",
        "model": str(plan.run.info.path),
        "device": plan.run.profile.name,
        "slots": plan.slots,
        "context_per_slot": plan.n_ctx_slot,
        "threads": plan.run.threads or plan.run.profile.threads,
        "api_key_required": keyed,
        "bias_adapter": str(running.adapter) if running.adapter else None,
        "llama_server_pid": running.server_pid,
        "log": str(running.log_path),
        "memory_estimate": plan.run.estimate.to_dict(),
        "pool": plan.pool.to_dict() if plan.pool is not None else None,
    }


def _announce(running: Running, keyed: bool) -> None:
    plan = running.plan
    info, profile, estimate = plan.run.info, plan.run.profile, plan.run.estimate
    threads = plan.run.threads or profile.threads
    lines = [
        f"serving {info.name} ({info.file_type}, {info.bits_per_weight:.2f} bpw) on {profile.name}",
        f"  {running.url}/v1   (OpenAI API{'; key required' if keyed else ''})",
        f"  {plan.slots} slot{'s' if plan.slots > 1 else ''} x {plan.n_ctx_slot} tokens, "
        f"{threads} threads, est. {mib(estimate.against_budget)} of {mib(estimate.budget)} budget",
    ]
    if running.adapter is not None:
        lines.append(f"  bias adapter {running.adapter.name}, scale set by the guard")
    lines.append(f"  llama-server pid {running.server_pid}, log {running.log_path}")
    err_console.print(Text("\n".join(lines)))
    err_console.print("[dim]Ctrl-C stops it.[/dim]")
