"""`edgekit model`: the embedded default model."""

from __future__ import annotations

import typer

from edgekit.cli.options import JsonOpt
from edgekit.cli.render import out_console, print_json, user_errors

model_app = typer.Typer(help="The embedded default model.", no_args_is_help=True)


@model_app.command("fetch")
@user_errors
def model_fetch(as_json: JsonOpt = False) -> None:
    """Assemble and verify the embedded default model in the user cache (once)."""
    from edgekit.default_model import LICENSE_NOTE, fetch_default_model

    path = fetch_default_model()
    if as_json:
        print_json({"path": str(path), "license": LICENSE_NOTE})
    else:
        out_console.print(f"{path}\n[dim]{LICENSE_NOTE}[/dim]")


@model_app.command("path")
@user_errors
def model_path(as_json: JsonOpt = False) -> None:
    """Print where the default model is (or will be) kept."""
    from edgekit.default_model import default_model_path, is_fetched

    path = default_model_path()
    if as_json:
        print_json({"path": str(path), "fetched": is_fetched(path)})
    else:
        out_console.print(str(path))
