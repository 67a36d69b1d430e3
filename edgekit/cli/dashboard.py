"""`edgekit dashboard`: the Textual TUI. textual loads only when this command runs."""

from __future__ import annotations

from typing import Annotated

import typer

from edgekit.cli.checks import check_generation_options
from edgekit.cli.options import ThreadsOption
from edgekit.cli.render import user_errors


@user_errors
def dashboard_command(
    model: Annotated[
        str | None,
        typer.Argument(help="A .gguf file or an ONNX folder; the default model if omitted."),
    ] = None,
    device: Annotated[str, typer.Option("--device", "-d", help="Device profile.")] = "cpu",
    ctx: Annotated[
        int | None, typer.Option("--ctx", "-c", help="Context size (default: the profile's).")
    ] = None,
    max_tokens: Annotated[
        int, typer.Option("--max-tokens", "-n", help="Tokens to generate per reply.")
    ] = 256,
    temperature: Annotated[float, typer.Option("--temp", help="Temperature; 0 is greedy.")] = 0.8,
    seed: Annotated[int, typer.Option("--seed", "-s", help="-1 picks a random seed.")] = -1,
    threads: ThreadsOption = None,
    rpc: Annotated[
        str | None,
        typer.Option("--rpc", help="RPC workers HOST:PORT[,HOST:PORT...] that hold layers."),
    ] = None,
) -> None:
    """Chat with a model while watching its memory, speed, precision and device budget live."""
    check_generation_options(max_tokens=max_tokens, ctx=ctx, temperature=temperature, seed=seed)
    try:
        from edgekit.tui.app import run_dashboard
    except ImportError as e:
        from edgekit.errors import EdgekitError

        raise EdgekitError(
            f"the dashboard needs textual, which does not load: {e}",
            hint="Install the TUI extra: pip install 'edgekit[tui]'.",
        ) from None
    from edgekit.backends.base import SamplingParams

    params = SamplingParams(
        max_tokens=max_tokens,
        temperature=temperature,
        seed=0xFFFFFFFF if seed < 0 else seed,
    )
    if not rpc:
        from edgekit.devices.profiles import load_profile

        rpc = ",".join(load_profile(device).rpc) or None
    run_dashboard(model, device, ctx, params, threads=threads, rpc=rpc)
