"""`edgekit tools`: llama.cpp's own tools, built by setup from the same source as the wheel."""

from __future__ import annotations

from typing import Annotated

import typer

from edgekit.cli.options import JsonOpt
from edgekit.cli.render import out_console, print_json, user_errors

tools_app = typer.Typer(help="llama.cpp's tools (llama-cli, llama-quantize, ...).")


@tools_app.command("path")
@user_errors
def tools_path(
    name: Annotated[str, typer.Argument(help="e.g. llama-cli, llama-quantize, rpc-server")],
    as_json: JsonOpt = False,
) -> None:
    """Print where one of llama.cpp's tools is."""
    from edgekit.backends.llama_cpp.build import tool_path

    path = tool_path(name)
    if as_json:
        print_json({"name": name, "path": str(path)})
    else:
        out_console.print(str(path), soft_wrap=True)


@tools_app.command("list")
@user_errors
def tools_list(as_json: JsonOpt = False) -> None:
    """List llama.cpp's tools edgekit uses, with the build they come from."""
    from edgekit.backends.llama_cpp.build import TOOLS, current_variant, tool_path
    from edgekit.errors import RuntimeBackendError

    found: dict[str, str | None] = {}
    for name in TOOLS:
        try:
            found[name] = str(tool_path(name))
        except RuntimeBackendError:
            found[name] = None
    if as_json:
        print_json({"variant": current_variant(), "tools": found})
        return
    for name, path in found.items():
        out_console.print(f"{name:18} {path or '[red]missing: run scripts/setup.sh[/red]'}")
