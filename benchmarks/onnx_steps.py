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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("source", type=Path)
    ap.add_argument("--target-bpw", type=float, default=None)
    ap.add_argument("--out", type=Path, default=None, help="the ONNX folder (default: a temp one)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="edgekit-onnx-") as tmp:
        got = convert_steps(args.source, args.target_bpw, args.out or Path(tmp) / "out")
    for s in got["steps"]:
        start, peak = s["start_gib"], s["peak_gib"]
        print(f"{s['step']:<45} {s['seconds']:>8.1f} s {start:>6.2f} {peak:>6.2f} GiB")
    print(f"{'whole convert':<45} {got['seconds']:>8.1f} s {'':>6} {got['peak_gib']:>6.2f} GiB")
    if args.json:
        args.json.write_text(json.dumps(got, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
