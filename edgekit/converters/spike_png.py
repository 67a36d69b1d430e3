"""PNG plots with matplotlib (imported here only): the spike profile and the quality frontier."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from edgekit.quant.spike_plot import grid
from edgekit.quant.spikes import SpikeProfile


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    return plt


def spike_png(profile: SpikeProfile, path: Path, kept: Collection[str] = ()) -> Path:
    """max |input| per block, one line per projection; kept layers circled."""
    plt = pyplot()
    blocks, kinds, cells = grid(profile)
    fig, ax = plt.subplots(figsize=(9, 4.5), dpi=110)
    for kind in kinds:
        xs = [b for b in blocks if (b, kind) in cells]
        ys = [cells[(b, kind)].input.max for b in xs]
        ax.plot(xs, ys, marker="o", markersize=3, label=kind)
        marked = [(b, cells[(b, kind)].input.max) for b in xs if cells[(b, kind)].tensor in kept]
        if marked:
            ax.scatter(*zip(*marked, strict=True), s=160, facecolors="none", edgecolors="red")
    ax.set_yscale("log")
    ax.set_xlabel("block")
    ax.set_ylabel("max per-token |input| (BOS excluded)")
    ax.set_title(f"Activation spikes: {profile.model} (red circles: kept at high precision)")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def frontier_png(rows: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """KLD vs file size, one marker per family (stock, spike-aware, random)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
    styles = {
        "llama.cpp": ("s", "tab:blue"),
        "llama.cpp+imatrix": ("D", "tab:green"),
        "edgekit": ("o", "tab:red"),
        "random": ("x", "grey"),
    }
    for family, (marker, color) in styles.items():
        pts = [r for r in rows if r["family"] == family]
        if not pts:
            continue
        ax.scatter(
            [r["file_size"] / 2**20 for r in pts],
            [r["kld"] for r in pts],
            marker=marker,
            color=color,
            label=family,
        )
        for r in pts:
            ax.annotate(
                r["name"],
                (r["file_size"] / 2**20, r["kld"]),
                fontsize=6,
                xytext=(3, 3),
                textcoords="offset points",
            )
    ax.set_yscale("log")
    ax.set_xlabel("file size (MiB)")
    ax.set_ylabel("mean KL divergence vs F32 reference")
    ax.set_title("Quality frontier on the default model (lower-left is better)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
