"""What `run` and `dashboard` share for --rpc: ask the workers, show the split, then load."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.table import Table

from edgekit.backends.llama_cpp.rpc.pool import LOCAL
from edgekit.cli.render import err_console, mib

if TYPE_CHECKING:
    from edgekit.backends.base import RunPlan, Runtime
    from edgekit.backends.llama_cpp.rpc.pool import PoolPlan, Share


def wants_workers(rpc: str | None, device: str) -> bool:
    """--rpc, or a profile with `rpc = [...]`."""
    if rpc:
        return True
    from edgekit.devices.profiles import load_profile

    return bool(load_profile(device).rpc)


def split_table(pool: PoolPlan) -> Table:
    info = pool.run.info
    table = Table(
        title=f"{info.name}: {info.block_count} layers + output over {len(pool.split.shares)} "
        f"devices (n_gpu_layers {pool.split.n_gpu_layers})",
        title_justify="left",
    )
    table.add_column("device", no_wrap=True)
    table.add_column("holds")
    for col in ("weights", "KV cache", "total", "budget", ""):
        table.add_column(col, justify="right", no_wrap=True)
    for s in pool.split.shares:
        table.add_row(
            s.member.name,
            _holds(s),
            mib(s.weights),
            mib(s.kv_cache),
            mib(s.total),
            mib(s.member.budget),
            "[green]ok[/green]" if s.fits else "[red]too much[/red]",
        )
    return table


def _holds(share: Share) -> str:
    if share.member.name != LOCAL:
        return share.describe_layers()
    # The input embedding always stays here (llama.cpp keeps it on the CPU).
    return "input" + (f", {share.describe_layers()}" if share.layers or share.output else "")


def open_with_workers(
    model: str | None,
    device: str,
    ctx: int | None,
    rpc: str | None,
    verbose: bool,
    quiet: bool,
) -> tuple[RunPlan, Runtime]:
    from edgekit.backends.llama_cpp.rpc.pool import open_pool, plan_pool

    pool = plan_pool(model, device, ctx, rpc)
    if not quiet:
        err_console.print(split_table(pool))
        err_console.print(
            f"[dim]loading: the workers' layers are sent over the network "
            f"({mib(sum(s.weights for s in pool.split.shares[1:]))})[/dim]"
        )
    return pool.run, open_pool(pool, verbose)
