"""The spike profile as a terminal heat table: max |input| per block (rows) x projection (columns).

Kept layers (those a plan keeps at high precision) are marked. Pure rich; the PNG version with
matplotlib lives in converters/spike_png.py.
"""

from __future__ import annotations

from collections.abc import Collection

from rich.table import Table
from rich.text import Text

from edgekit.quant.spikes import LayerSpikes, SpikeProfile

_SHADES = ("grey50", "green", "yellow", "dark_orange", "red", "bold red")


def projection(layer: LayerSpikes) -> str:
    """The per-block kind of a tensor (blk.3.ffn_down.weight -> ffn_down)."""
    parts = layer.tensor.split(".")
    return parts[2] if layer.block is not None and len(parts) > 2 else parts[0]


def grid(profile: SpikeProfile) -> tuple[list[int], list[str], dict[tuple[int, str], LayerSpikes]]:
    cells = {(x.block, projection(x)): x for x in profile.layers if x.block is not None}
    blocks = sorted({b for b, _ in cells})
    kinds = sorted({k for _, k in cells})
    return blocks, kinds, cells


def _shade(value: float, top: float) -> str:
    if top <= 0:
        return _SHADES[0]
    return _SHADES[min(int(len(_SHADES) * value / top), len(_SHADES) - 1)]


def spike_table(profile: SpikeProfile, kept: Collection[str] = (), side: str = "input") -> Table:
    blocks, kinds, cells = grid(profile)
    top = max((getattr(x, side).max for x in cells.values()), default=0.0)
    table = Table(
        title=f"max |{side}| per block and projection (score in brackets; * kept high)",
        title_justify="left",
    )
    table.add_column("block", justify="right")
    for k in kinds:
        table.add_column(k, justify="right")
    for b in blocks:
        row: list[Text | str] = [str(b)]
        for k in kinds:
            layer = cells.get((b, k))
            if layer is None:
                row.append("")
                continue
            stat = getattr(layer, side)
            mark = "*" if layer.tensor in kept else " "
            label = f"{stat.max:8.1f} ({stat.score:4.1f}){mark}"
            row.append(Text(label, style=_shade(stat.max, top)))
        table.add_row(*row)
    return table
