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
    attach: Annotated[
        str | None,
        typer.Option(
            "--attach",
            help="Watch a running `edgekit serve` (or llama-server --metrics) at this URL "
            "instead of loading a model.",
        ),
    ] = None,
    api_key: Annotated[
        str | None, typer.Option("--api-key", help="The server's API key (with --attach).")
    ] = None,
) -> None:
    """Chat with a model while watching its memory, speed, precision and device budget live."""
    from edgekit.backends.base import SamplingParams

    typed = SamplingParams(max_tokens=max_tokens, temperature=temperature, seed=seed)
    params = check_generation_options(typed, ctx)
    if attach is not None:
        check_attach_url(attach, model)
    try:
        from edgekit.tui.app import run_attached, run_dashboard
    except ImportError as e:
        from edgekit.errors import EdgekitError

        raise EdgekitError(
            f"the dashboard needs textual, which does not load: {e}",
            hint="Install the TUI extra: pip install 'edgekit[tui]'.",
        ) from None
    if attach is not None:
        run_attached(attach, api_key)
        return
    if not rpc:
        from edgekit.devices.profiles import load_profile

        rpc = ",".join(load_profile(device).rpc) or None
    run_dashboard(model, device, ctx, params, threads=threads, rpc=rpc)


def check_attach_url(url: str, model: str | None) -> None:
    from urllib.parse import urlsplit

    from edgekit.errors import EdgekitError

    if model is not None:
        raise EdgekitError(
            "--attach watches the server's model: give no MODEL with it",
            hint="edgekit dashboard --attach http://127.0.0.1:8080",
        )
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise EdgekitError(
            f"--attach needs the server's URL, got {url!r}",
            hint="For example: edgekit dashboard --attach http://127.0.0.1:8080",
        )
