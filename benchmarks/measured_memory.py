"""Peak memory and time of each step of the measured GGUF convert (what `edgekit convert --mix
Q4_K_M` runs) on a random-weight model of a real shape: memory and time only, never quality.

The F16 file is written once by benchmarks.random_shapes (streamed, tensor by tensor) and is the
float file the target is measured against: peak resident memory <= 1.5x its size. The convert
runs in a child process from an empty cache, so every step really runs and the peak is its own.
A step's peak is the process's high-water mark (VmHWM, reset per step, file pages that llama.cpp
maps included); the llama.cpp tools the convert starts (llama-quantize) are separate processes,
whose largest peak is reported beside it.

    python -m benchmarks.measured_memory [--shape qwen2-1.5b] [--folder DIR] [--mix Q4_K_M]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks._common import console, print_table, verdict, write_json
from benchmarks.onnx_steps import GIB, StepRecorder
from benchmarks.random_shapes import SHAPES, n_params, write_f16
from edgekit.metrics import peak_rss_bytes
from edgekit.paths import cache_dir

PEAK_RATIO = 1.5  # of the float file's size


def convert_steps(source: Path, mix: str, out: Path) -> dict[str, Any]:
    """The measured convert's steps, called as `convert_measured` calls them (it is in this
    process that their memory is measured)."""
    from edgekit.converters.measured import Workspace, measured_plans, target_for, write_guarded
    from edgekit.texts.calibration import CALIBRATION_TEXT

    rec = StepRecorder()
    start = time.perf_counter()
    ws = Workspace(source, CALIBRATION_TEXT, threads=2)
    with rec.stage("imatrix (own pass, spike scores)"):
        ws.imatrix()
    with rec.stage("stock dry runs"):
        target, stock = target_for(ws, mix, None)
    with rec.stage("sensitivity (weighted errors, probes)"):
        plans, measured = measured_plans(ws, target, stock)
    with rec.stage("llama-quantize of the plan, the stock mix, the guard"):
        verdict_ = write_guarded(ws, out, target, plans, measured, "bench")
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    return {
        "steps": rec.steps,
        "seconds": round(time.perf_counter() - start, 1),
        "peak_gib": round(max(rec.peak, peak_rss_bytes()) / GIB, 3),
        "tools_peak_gib": round(children / GIB, 3),
        "guard": verdict_.to_dict() if verdict_ else None,
        "output_bytes": out.stat().st_size,
    }


def child(source: Path, mix: str) -> None:
    with tempfile.TemporaryDirectory(prefix="edgekit-cache-") as cache:
        os.environ["EDGEKIT_CACHE_DIR"] = cache
        got = convert_steps(source, mix, Path(cache) / "out.gguf")
    print(json.dumps(got))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shape", default="qwen2-1.5b", choices=sorted(SHAPES))
    ap.add_argument("--folder", type=Path, default=cache_dir() / "shapes")
    ap.add_argument("--mix", default="Q4_K_M")
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.mix)
        return 0
    args.folder.mkdir(parents=True, exist_ok=True)
    source = args.folder / f"{args.shape}-f16.gguf"
    if not source.exists():
        console.print(f"writing {source} (random weights, F16)...")
        write_f16(source.with_suffix(".partial"), SHAPES[args.shape]).rename(source)
    cmd = [sys.executable, "-m", "benchmarks.measured_memory", "--child", str(source)]
    done = subprocess.run([*cmd, "--mix", args.mix], capture_output=True, text=True, check=True)
    got = json.loads(done.stdout.strip().splitlines()[-1])
    float_gib = source.stat().st_size / GIB
    rows = [(s["step"], s["seconds"], s["start_gib"], s["peak_gib"]) for s in got["steps"]]
    rows.append(("whole convert", got["seconds"], "", got["peak_gib"]))
    title = (
        f"measured convert at {args.mix}'s size, {args.shape} "
        f"({n_params(SHAPES[args.shape]) / 1e9:.2f}B, F16 file {float_gib:.2f} GiB)"
    )
    print_table(title, ("step", "seconds", "start GiB", "peak GiB"), rows)
    ratio = got["peak_gib"] / float_gib
    console.print(
        f"peak {got['peak_gib']:.2f} GiB = {ratio:.2f}x the float file; llama.cpp tools' "
        f"largest peak {got['tools_peak_gib']:.2f} GiB ({got['tools_peak_gib'] / float_gib:.2f}x)"
    )
    write_json(
        f"measured_memory_{args.shape}",
        {
            "shape": args.shape,
            "float_file_bytes": source.stat().st_size,
            "mix": args.mix,
            **got,
            "peak_ratio": round(ratio, 3),
        },
    )
    return verdict(ratio <= PEAK_RATIO, f"peak <= {PEAK_RATIO}x the float file")


if __name__ == "__main__":
    raise SystemExit(main())
