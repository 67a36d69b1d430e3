"""`edgekit devices`: the device profiles, built-in and the user's own."""

from __future__ import annotations

import typer
from rich.table import Table

from edgekit.cli.options import JsonOpt
from edgekit.cli.render import kv_table, mib, out_console, print_json, user_errors

devices_app = typer.Typer(help="List and show device profiles.", invoke_without_command=True)


@devices_app.callback()
@user_errors
def devices_list(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List the device profiles (built-in and your own)."""
    if ctx.invoked_subcommand is not None:
        return
    from edgekit.devices import all_profiles

    profiles = all_profiles()
    if as_json:
        print_json([p.to_dict() for p in profiles])
        return
    table = Table(title="Device profiles", title_justify="left")
    for col in ("name", "threads", "GPU layers", "context", "budget", "description"):
        table.add_column(col)
    for p in profiles:
        gpu = "all" if p.gpu_layers < 0 else str(p.gpu_layers)
        budget = f"{mib(p.memory_budget_bytes)} ({p.budget_source})"
        table.add_row(p.name, str(p.threads), gpu, str(p.context), budget, p.description)
    out_console.print(table)


@devices_app.command("show")
@user_errors
def devices_show(name: str, as_json: JsonOpt = False) -> None:
    """Show one device profile with its auto values resolved for this machine."""
    from edgekit.devices import load_profile

    profile = load_profile(name)
    data = profile.to_dict()
    if as_json:
        print_json(data)
        return
    data = {k: v for k, v in data.items() if v not in ("", {}, ())}
    out_console.print(kv_table(f"Device profile {name}", data))
