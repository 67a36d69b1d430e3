"""`edgekit devices`: the device profiles, built-in and the user's own."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table
from rich.text import Text

from edgekit.cli.options import JsonOpt
from edgekit.cli.render import kv_table, mib, out_console, print_json, user_errors

if TYPE_CHECKING:
    from edgekit.devices.profiles import ProfileEntry

devices_app = typer.Typer(help="List and show device profiles.", invoke_without_command=True)


@devices_app.callback()
@user_errors
def devices_list(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List the device profiles (built-in and your own); broken files are listed with why."""
    if ctx.invoked_subcommand is not None:
        return
    from edgekit.devices.profiles import scan_profiles

    entries = scan_profiles()
    if as_json:
        print_json([_entry_dict(e) for e in entries])
        return
    table = Table(title="Device profiles", title_justify="left")
    for col in ("name", "threads", "GPU layers", "context", "budget", "description"):
        table.add_column(col)
    for e in entries:
        p = e.profile
        if p is None:
            table.add_row(Text(e.name), "", "", "", "", Text("broken: see below", style="red"))
            continue
        gpu = "all" if p.gpu_layers < 0 else str(p.gpu_layers)
        budget = f"{mib(p.memory_budget_bytes)} ({p.budget_source})"
        note = " (your file; replaces the built-in)" if e.shadows else ""
        # Text, not markup: names and descriptions come from the user's files.
        row = (p.name, str(p.threads), gpu, str(p.context), budget, p.description + note)
        table.add_row(*(Text(cell) for cell in row))
    out_console.print(table)
    for e in entries:
        if e.error is not None:
            out_console.print(Text(f"broken: {e.error.message}", style="red"), soft_wrap=True)
        elif e.shadows is not None:
            out_console.print(f"note: {e.path} replaces the built-in {e.name}", soft_wrap=True)


def _entry_dict(e: ProfileEntry) -> dict[str, Any]:
    where = {"source": str(e.path), "user": e.user, "shadows": str(e.shadows or "") or None}
    if e.profile is None:
        assert e.error is not None
        return {"name": e.name, **where, "broken": True, "error": e.error.to_dict()}
    return {**e.profile.to_dict(), **where, "broken": False}


@devices_app.command("show")
@user_errors
def devices_show(name: str, as_json: JsonOpt = False) -> None:
    """Show one device profile with its auto values resolved for this machine."""
    from edgekit.devices.profiles import load_profile

    profile = load_profile(name)
    data = profile.to_dict()
    if as_json:
        print_json(data)
        return
    data = {k: v for k, v in data.items() if v not in ("", {}, ())}
    out_console.print(kv_table(f"Device profile {name}", data))
