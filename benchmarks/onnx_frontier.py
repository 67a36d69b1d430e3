"""onnx_frontier: fp32 vs int8-all vs spike-aware int8 (vs a random-layer control) on onnxruntime.

The model is the default Gemma 3 270M, dequantized from its Q4_K_M GGUF by transformers into a
float checkpoint (so the fp32 reference itself came from a Q4_K_M file), exported once with
optimum (text-generation-with-past) and quantized with onnxruntime's dynamic int8. The spike
profile is the GGUF benchmark's (benchmarks/results/quant_frontier_scores.json) when it exists,
else it is calibrated here with the shared calibrator. Quality: PPL, KLD and top-1 agreement
against the fp32 export over the system's GPL-3 text; speed: greedy decode tok/s.

Usage: python -m benchmarks.onnx_frontier [--quick] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks._common import (
    COUNTING_PROMPT,
    RESULTS_DIR,
    console,
    print_table,
    verdict,
    write_json,
)
from edgekit.backends.onnx.eval import PREFILL_CHUNK, decode_speed, evaluate_onnx
from edgekit.converters.onnx_convert import OnnxConvertResult, convert_to_onnx
from edgekit.converters.onnx_export import hf_dir_from_gguf
from edgekit.devices import DeviceProfile, load_profile
from edgekit.eval_text import load_eval_text
from edgekit.planner import RandomLayers
from edgekit.runner import resolve_model
from edgekit.spikes import SpikeProfile
from edgekit.spikes import load_profile as load_spikes

THREADS = 1  # this machine is shared: a second spinning thread collapses when a core is taken
GGUF_SCORES = RESULTS_DIR / "quant_frontier_scores.json"


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true", help="fewer windows and tokens")
    p.add_argument("--workdir", type=Path, help="keep the exported models here (reused)")
    return p.parse_args()


def spike_profile(hf_dir: Path) -> tuple[SpikeProfile, str]:
    if GGUF_SCORES.exists():
        return load_spikes(GGUF_SCORES), str(GGUF_SCORES.name)
    from edgekit.calibration_text import CALIBRATION_TEXT
    from edgekit.converters.calibrate import calibrate, load_for_calibration

    return calibrate(load_for_calibration(hf_dir), [CALIBRATION_TEXT]), "calibrated here"


def build(work: Path, say: Any) -> tuple[dict[str, OnnxConvertResult], str, dict[str, float]]:
    gguf = resolve_model(None)
    times: dict[str, float] = {}
    t = time.perf_counter()
    hf = work / "hf"
    if not (hf / "config.json").exists():
        hf_dir_from_gguf(gguf, hf)
    times["dequantize_s"] = time.perf_counter() - t
    profile, scores_from = spike_profile(hf)
    runs: dict[str, OnnxConvertResult] = {}
    fp32 = runs["fp32"] = convert_to_onnx(hf, work / "fp32", "fp32", log=say)
    spike = runs["int8 spike-aware"] = convert_to_onnx(
        hf, work / "spike", "spike", scores=profile, fp32_dir=fp32.output, log=say
    )
    runs["int8-all"] = convert_to_onnx(hf, work / "int8", "int8", fp32_dir=fp32.output, log=say)
    # The paper's control: as many layers kept, chosen at random among the scored ones.
    control = RandomLayers(seed=0, k=len(spike.plan.kept))
    runs["int8 random-layer"] = convert_to_onnx(
        hf, work / "random", "spike", scores=profile, recipe=control, fp32_dir=fp32.output
    )
    times.update({f"{name}_convert_s": r.seconds for name, r in runs.items()})
    return runs, scores_from, times


def quality(
    runs: dict[str, OnnxConvertResult], profile: DeviceProfile, chunk: int, windows: int
) -> list[Any]:
    names = list(runs)
    ref, rows = evaluate_onnx(
        runs["fp32"].output,
        [runs[n].output for n in names[1:]],
        load_eval_text().text,
        n_ctx=256,
        max_windows=windows,
        profile=profile,
        chunk=chunk,
    )
    return [ref, *rows]


def measure(
    runs: dict[str, OnnxConvertResult], profile: DeviceProfile, quick: bool
) -> list[dict[str, Any]]:
    # Prompt processing (64 positions per call share one int8 activation scale) and decoding
    # (one position per call) see different int8 errors; both are reported.
    prefill = quality(runs, profile, PREFILL_CHUNK, 1 if quick else 4)
    decode = quality(runs, profile, 1, 1 if quick else 2)
    out = []
    for name, p, d in zip(runs, prefill, decode, strict=True):
        tok_s = decode_speed(runs[name].output, profile, 16 if quick else 64, COUNTING_PROMPT)
        out.append(
            {
                "variant": name,
                **p.to_dict(),
                "decode_mode": {"n_tokens": d.n_tokens, "ppl": d.ppl, "kld": d.kld, "top1": d.top1},
                "decode_tok_s": tok_s,
                "kept": [t.tensor for t in runs[name].plan.kept],
            }
        )
    return out


def main() -> int:
    args = parse()
    profile = dataclasses.replace(load_profile("cpu"), threads=THREADS)
    holder = None if args.workdir else tempfile.TemporaryDirectory(prefix="onnx_frontier_")
    work = args.workdir or Path(holder.name)  # type: ignore[union-attr]
    work.mkdir(parents=True, exist_ok=True)
    for d in ("fp32", "spike", "int8", "random"):  # convert refuses to overwrite
        if (work / d).exists():
            shutil.rmtree(work / d)
    try:
        runs, scores_from, times = build(work, lambda m: console.print(f"[dim]{m}[/dim]"))
        rows = measure(runs, profile, args.quick)
    finally:
        if holder:
            holder.cleanup()
    print_table(
        "ONNX frontier: Gemma 3 270M (float from Q4_K_M) on onnxruntime CPU",
        ["variant", "MiB", "PPL", "KLD", "top-1", "KLD dec", "top-1 dec", "tok/s", "kept fp32"],
        [
            [
                r["variant"],
                f"{r['file_size'] / 2**20:,.0f}",
                f"{r['ppl']:.2f}",
                f"{r['kld']:.4f}",
                f"{r['top1']:.3f}",
                f"{r['decode_mode']['kld']:.4f}",
                f"{r['decode_mode']['top1']:.3f}",
                f"{r['decode_tok_s']:.1f}",
                " ".join(t.removeprefix("blk.").removesuffix(".weight") for t in r["kept"]),
            ]
            for r in rows
        ],
    )
    by = {r["variant"]: r for r in rows}
    spike, allq = by["int8 spike-aware"], by["int8-all"]
    write_json(
        "onnx_frontier",
        {
            "model": str(resolve_model(None)),
            "reference": "fp32 ONNX export of the Q4_K_M GGUF dequantized by transformers",
            "eval_text": load_eval_text().source,
            "threads": THREADS,
            "spike_scores": scores_from,
            "quick": args.quick,
            "times": times,
            "rows": rows,
        },
    )
    control = by["int8 random-layer"]
    better = spike["kld"] < allq["kld"] and spike["kld"] < control["kld"]
    return verdict(
        better, "spike-aware int8: lower prompt-processing KLD than int8-all and the random control"
    )


if __name__ == "__main__":
    raise SystemExit(main())
