"""`edgekit convert` with the measured recipe: llama.cpp's mix, improved by measured costs."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgekit.cli.eval import eval_rows, print_eval_table
from edgekit.cli.render import err_console, mib, out_console, print_json, progress_bar

if TYPE_CHECKING:
    from edgekit.quant.spikes import SpikeProfile


@dataclass(frozen=True)
class MeasuredSettings:
    mix: str | None
    target_bpw: float | None
    dry_run: bool
    no_eval: bool
    eval_file: Path | None
    eval_windows: int


def convert_measured(
    src: Path,
    out: Path,
    profile: SpikeProfile | None,
    text: str,
    s: MeasuredSettings,
    threads: int,
    verbose: bool,
    as_json: bool,
) -> None:
    from edgekit.converters.gguf import base_gguf
    from edgekit.converters.measured import Workspace, measured_plan, target_for, write_measured
    from edgekit.quant.mixplan import padded
    from edgekit.quant.spikes import calibration_hash

    start = time.perf_counter()
    with progress_bar("base GGUF", as_json) as update:
        base = base_gguf(src, threads, update)
    ws = Workspace(base, text, threads)
    mix = s.mix if s.mix is not None or s.target_bpw is not None else "Q4_K_M"
    if not as_json:
        err_console.print("measuring tensor sensitivities (cached after the first run)...")
    target, stock = target_for(ws, mix, s.target_bpw)
    p, measured = measured_plan(ws, target, stock, profile.scores() if profile else None)
    size = sum(padded(d.type, d.n_elements) for d in p.decisions)
    written = None
    if not s.dry_run:
        with progress_bar("quantizing", as_json) as update:
            chash = profile.calibration_hash if profile else calibration_hash([text])
            written = write_measured(ws, out, p, measured, chash, update)
        size = out.stat().st_size
    results = None
    if written is not None and not s.no_eval:
        results = eval_rows(base, [out], s.eval_file, s.eval_windows, threads, as_json)
    doc: dict[str, Any] = {
        "output": str(written) if written else None,
        "file_size": size,
        "target": target.label,
        "budget_bytes": target.budget_bytes,
        "bits_per_weight": round(p.bpw, 4),
        "seconds": round(time.perf_counter() - start, 1),
        "moved": [
            {"tensor": d.tensor, "type": d.type.name, "rule": d.rule, "note": d.note}
            for d in p.decisions
            if d.rule in ("up", "down")
        ],
    }
    if verbose:
        doc["plan"] = p.to_dict()
    if results:
        doc["eval"] = {
            "text": results[0],
            "reference": results[1].to_dict(),
            "models": [r.to_dict() for r in results[2]],
        }
    if as_json:
        print_json(doc)
        return
    if verbose:
        for line in p.lines():
            out_console.print(line, markup=False)
    where = str(written) if written else "dry run, nothing written"
    out_console.print(
        f"[bold]measured[/bold] mix at {target.label}'s budget: {mib(size)}, "
        f"{p.bpw:.3f} bits/weight -> {where}\n"
        f"{len(doc['moved'])} tensor(s) moved from the stock mix"
    )
    if results:
        print_eval_table(*results)
