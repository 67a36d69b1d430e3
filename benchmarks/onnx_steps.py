"""Wall time and peak resident memory of each step of `edgekit convert --to onnx`.

Each step is one of the convert's progress stages (dequantize, the builder's fp32 graph, spike
calibration, the 4/8-bit store, the sensitivity probes, the writer). The peak is the process's
own high-water mark (VmHWM), reset at the start of each stage through /proc/self/clear_refs, so a
step's peak is its own; the whole run's peak is ru_maxrss. Run in a fresh process per convert,
from an empty cache, so every step really runs:

    python -m benchmarks.onnx_steps MODEL.gguf --target-bpw 5.44 [--json out.json]

Random-weight shapes (benchmarks.random_shapes) give memory and time only, never quality.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edgekit.converters.request import ConvertRequest, Update
from edgekit.metrics import peak_rss_bytes, rss_bytes

GIB = 1 << 30


def _reset_peak() -> None:
    with contextlib.suppress(OSError):  # Linux only; elsewhere the peaks accumulate
        Path("/proc/self/clear_refs").write_text("5")


class StepRecorder:
    """A ConvertRequest `stage` that records each stage's seconds and peak RSS."""

    def __init__(self) -> None:
        self.steps: list[dict[str, Any]] = []
        self.peak = 0  # the whole run's, across the resets

    @contextlib.contextmanager
    def stage(self, label: str) -> Iterator[Update]:
        self.peak = max(self.peak, peak_rss_bytes())
        at_start = rss_bytes()
        _reset_peak()
        start = time.perf_counter()
        try:
            yield lambda *_: None
        finally:
            self.peak = max(self.peak, peak_rss_bytes())
            self.steps.append(
                {
                    "step": label,
                    "seconds": round(time.perf_counter() - start, 1),
                    "start_gib": round(at_start / GIB, 3),
                    "peak_gib": round(peak_rss_bytes() / GIB, 3),
                }
            )


def convert_steps(source: Path, bpw: float | None, out: Path) -> dict[str, Any]:
    """Convert `source` to an ONNX folder at `out` from an empty cache; the steps' costs."""
    from edgekit.converters.onnx import convert_to_onnx
    from edgekit.quant.planner import TargetBpw

    recorder = StepRecorder()
    recipe = TargetBpw(bpw=bpw) if bpw else None
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="edgekit-cache-") as cache:
        os.environ["EDGEKIT_CACHE_DIR"] = cache
        req = ConvertRequest(
            source, out, "onnx", plan_recipe=recipe, precision="int4", stage=recorder.stage
        )
        convert_to_onnx(req)
    return {
        "source": str(source),
        "target_bpw": bpw,
        "steps": recorder.steps,
        "seconds": round(time.perf_counter() - start, 1),
        "peak_gib": round(max(recorder.peak, peak_rss_bytes()) / GIB, 3),
    }


def builder_steps(source: Path, out: Path) -> dict[str, Any]:
    """The baseline: onnxruntime-genai's builder writing its own k_quant_mixed int4 from the
    same source (a GGUF is dequantized first, as it must be for the builder)."""
    from edgekit.backends.heap import release_memory
    from edgekit.converters.onnx_export import hf_dir_from_gguf
    from edgekit.converters.onnx_fused import build_fused

    recorder = StepRecorder()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="edgekit-hf-") as tmp:
        hf = source
        if source.is_file():
            with recorder.stage("dequantizing to a float checkpoint"):
                hf = hf_dir_from_gguf(source, Path(tmp) / "hf")
            release_memory()
        with recorder.stage("builder int4 k_quant_mixed"):
            build_fused(hf, out, precision="int4", int4_algo_config="k_quant_mixed")
    return {
        "source": str(source),
        "builder": "k_quant_mixed",
        "steps": recorder.steps,
        "seconds": round(time.perf_counter() - start, 1),
        "peak_gib": round(max(recorder.peak, peak_rss_bytes()) / GIB, 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("source", type=Path)
    ap.add_argument("--target-bpw", type=float, default=None)
    ap.add_argument("--builder", action="store_true", help="time the builder's own int4 instead")
    ap.add_argument("--out", type=Path, default=None, help="the ONNX folder (default: a temp one)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="edgekit-onnx-") as tmp:
        out = args.out or Path(tmp) / "out"
        if args.builder:
            got = builder_steps(args.source, out)
        else:
            got = convert_steps(args.source, args.target_bpw, out)
    for s in got["steps"]:
        start, peak = s["start_gib"], s["peak_gib"]
        print(f"{s['step']:<45} {s['seconds']:>8.1f} s {start:>6.2f} {peak:>6.2f} GiB")
    print(f"{'whole convert':<45} {got['seconds']:>8.1f} s {'':>6} {got['peak_gib']:>6.2f} GiB")
    if args.json:
        args.json.write_text(json.dumps(got, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()


def shape_rows(names: list[str], folder: Path, bpw: float) -> list[dict[str, Any]]:
    """Each random shape converted in a child process (its own peak), and the builder's own
    int4 of it where it fits in memory (0.5B: the builder peaked at 9.4 GiB there)."""
    import subprocess
    import sys

    from benchmarks.random_shapes import SHAPES, n_params, random_gguf

    rows = []
    for name in names:
        src = random_gguf(name, folder)
        runs = [("edgekit measured", ["--target-bpw", str(bpw)])]
        if n_params(SHAPES[name]) < 1e9:
            runs.append(("builder k_quant_mixed", ["--builder"]))
        for label, extra in runs:
            out = folder / f"{name}-{'builder' if extra == ['--builder'] else 'edgekit'}.json"
            cmd = [sys.executable, "-m", "benchmarks.onnx_steps", str(src), *extra]
            subprocess.run([*cmd, "--json", str(out)], check=True, stdout=subprocess.DEVNULL)
            got = json.loads(out.read_text(encoding="utf-8"))
            rows.append({"shape": name, "params": n_params(SHAPES[name]), "run": label, **got})
    return rows


def shapes(names: list[str], folder: Path, bpw: float = 5.44) -> int:
    """Memory and time per convert step on random-weight shapes (no quality: random weights)."""
    from benchmarks._common import print_table, write_json

    rows = shape_rows(names, folder, bpw)
    head = ["shape", "params", "run", "step", "s", "peak GiB"]
    print_table(f"ONNX convert steps, random weights, --target-bpw {bpw}", head, [
        [r["shape"], f"{r['params'] / 1e9:.2f}B", r["run"], s["step"], f"{s['seconds']:.0f}",
         f"{s['peak_gib']:.2f}"]
        for r in rows for s in [*r["steps"], {"step": "whole", **r}]
    ])  # fmt: skip
    write_json("onnx_frontier_shapes", {"target_bpw": bpw, "rows": rows})
    return 0
