"""quant_frontier: llama.cpp's stock mixes vs edgekit's spike-aware mixes vs a random ablation.

All files are made by the same quantizer (llama.cpp's, via llama-cpp-python) from the same F32
base, which is the default model's Q4_K_M dequantized: the reference itself came from a Q4_K_M
file, so a Q4_K_M re-quantization lands almost exactly on the reference's grid (read its KLD in
that light). Quality is measured in one lockstep pass over the evaluation text (the system's
GPL-3 text), decode speed with llama.cpp's counters, convert time against plain quantize.

Usage: python -m benchmarks.quant_frontier [--quick]
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from gguf import GGMLQuantizationType, LlamaFileType

from benchmarks._common import RESULTS_DIR, console, parse_args, print_table, verdict, write_json
from edgekit.backends.llama_cpp.eval import decode_speed, evaluate
from edgekit.backends.llama_cpp.quantize import write_gguf
from edgekit.convert import base_gguf, calibrate_source, plan_for, write_planned
from edgekit.eval_text import load_eval_text
from edgekit.gguf_file import read_header
from edgekit.planner import Plan, RandomLayers, Recipe, Spike, TargetBpw
from edgekit.runner import resolve_model
from edgekit.spike_plot import spike_table
from edgekit.spikes import SpikeProfile, load_profile

Q = GGMLQuantizationType
F = LlamaFileType
THREADS = 1  # this machine is shared: llama.cpp's spinning threads collapse when a core is taken
STOCK = {
    "Q3_K_M": F.MOSTLY_Q3_K_M,
    "Q4_0": F.MOSTLY_Q4_0,
    "Q4_K_M": F.MOSTLY_Q4_K_M,
    "Q5_K_M": F.MOSTLY_Q5_K_M,
    "Q6_K": F.MOSTLY_Q6_K,
    "Q8_0": F.MOSTLY_Q8_0,
}
SCORES = RESULTS_DIR / "quant_frontier_scores.json"


def profile_for(source: Path) -> SpikeProfile:
    if SCORES.exists():
        return load_profile(SCORES)
    from edgekit.calibration_text import CALIBRATION_TEXT

    t = time.perf_counter()
    profile = calibrate_source(source, CALIBRATION_TEXT)
    console.print(f"calibrated in {time.perf_counter() - t:.0f} s")
    profile.save(SCORES)
    return profile


def stock(base: Path, out: Path, ftype: LlamaFileType) -> float:
    t = time.perf_counter()
    write_gguf(base, out, None, ftype, threads=THREADS)
    return time.perf_counter() - t


def planned(base: Path, out: Path, p: Plan, profile: SpikeProfile) -> float:
    t = time.perf_counter()
    write_planned(base, out, p, profile, threads=THREADS)
    return time.perf_counter() - t


def variants(
    base: Path, profile: SpikeProfile, q4km: Path, seeds: int
) -> list[tuple[str, str, Plan]]:
    """(name, family, plan) for edgekit's recipes and their random controls at the same budget."""
    mix = {t.name: t.ggml_type for t in read_header(q4km).tensors}
    bpw_q4km = (
        8
        * sum(t.n_bytes for t in read_header(q4km).tensors)
        / sum(t.n_elements for t in read_header(q4km).tensors)
    )
    out: list[tuple[str, str, Plan]] = []

    def add(name: str, family: str, recipe: Recipe, base_t: Q, base_mix: Any = None) -> Plan:
        p = plan_for(base, profile, base_t, recipe, base_mix=base_mix)
        out.append((name, family, p))
        return p

    spike_k = add("spike/Q4_K", "edgekit", Spike(), Q.Q4_K)
    tb = add("spike-bpw@Q4_K_M/Q4_K", "edgekit", TargetBpw(bpw_q4km), Q.Q4_K)
    on_mix = add("spike+Q4_K_M-mix", "edgekit", Spike(), Q.Q4_K, mix)
    spike_0 = add("spike/Q4_0", "edgekit", Spike(), Q.Q4_0)
    for s in range(seeds):
        add(f"random-bpw@Q4_K_M/Q4_K#{s}", "random", RandomLayers(seed=s, bpw=tb.bpw), Q.Q4_K)
        add(f"random/Q4_K#{s}", "random", RandomLayers(seed=s, k=len(spike_k.kept)), Q.Q4_K)
        add(
            f"random+Q4_K_M-mix#{s}",
            "random",
            RandomLayers(seed=s, k=len(on_mix.kept)),
            Q.Q4_K,
            mix,
        )
        add(f"random/Q4_0#{s}", "random", RandomLayers(seed=s, k=len(spike_0.kept)), Q.Q4_0)
    return out


def convert_times(
    base: Path, work: Path, p: Plan, profile: SpikeProfile, rounds: int
) -> dict[str, float]:
    """Interleaved rounds of plain Q4_K_M quantize vs edgekit's planned write (same base type)."""
    plain, ours = [], []
    for _ in range(rounds):
        plain.append(stock(base, work / "t-plain.gguf", F.MOSTLY_Q4_K_M))
        ours.append(planned(base, work / "t-ours.gguf", p, profile))
    return {
        "plain_s": statistics.median(plain),
        "edgekit_s": statistics.median(ours),
        "ratio": statistics.median(ours) / statistics.median(plain),
    }


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="quant_frontier-"))
    try:
        return run(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)  # ~4 GB of GGUFs


def run(work: Path) -> int:
    args = parse_args(__doc__ or "")
    seeds, windows = (1, 2) if args.quick else (2, 4)
    source = resolve_model(None)
    base = base_gguf(source, THREADS)
    profile = profile_for(source)
    rows: list[dict[str, Any]] = []
    files: list[Path] = []
    for name, ftype in STOCK.items():
        path = work / f"{name}.gguf"
        rows.append({"name": name, "family": "llama.cpp", "convert_s": stock(base, path, ftype)})
        files.append(path)
    plans = variants(base, profile, work / "Q4_K_M.gguf", seeds)
    for name, family, p in plans:
        path = work / f"{name.replace('/', '_')}.gguf"
        rows.append(
            {
                "name": name,
                "family": family,
                "convert_s": planned(base, path, p, profile),
                "kept": [d.tensor for d in p.kept],
            }
        )
        files.append(path)
    times = convert_times(base, work, plans[0][2], profile, 2 if args.quick else 3)
    text = load_eval_text()
    t = time.perf_counter()
    ref, results = evaluate(base, files, text.text, max_windows=windows, threads=THREADS)
    console.print(f"evaluated {len(files)} models in {time.perf_counter() - t:.0f} s")
    for row, res in zip(rows, results, strict=True):
        row |= {k: v for k, v in res.to_dict().items() if k != "model"}
        row["decode_tok_s"] = decode_speed(Path(res.model), THREADS, 32)
    return report(rows, ref.to_dict(), times, text.source, profile, plans[0][2])


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    by = {r["name"]: r for r in rows}
    q4 = by["Q4_K_M"]
    verdicts: dict[str, Any] = {}
    for r in (r for r in rows if r["family"] == "edgekit"):
        controls = [
            c
            for c in rows
            if c["family"] == "random"
            and c["name"].split("#")[0] == r["name"].replace("spike", "random", 1)
        ]
        mean_kld = statistics.mean(c["kld"] for c in controls) if controls else None
        verdicts[r["name"]] = {
            "dominates_Q4_K_M": r["file_size"] <= q4["file_size"]
            and r["kld"] < q4["kld"]
            and r["ppl"] < q4["ppl"],
            "random_mean_kld": mean_kld,
            "beats_random": mean_kld is not None and r["kld"] < mean_kld,
        }
    return verdicts


def report(
    rows: list[dict[str, Any]],
    ref: dict[str, Any],
    times: dict[str, float],
    source: str,
    profile: SpikeProfile,
    spike_plan: Plan,
) -> int:
    from edgekit.converters.spike_png import frontier_png, spike_png

    cols = ("model", "family", "MiB", "bpw", "PPL", "KLD", "top-1", "tok/s", "convert s")
    table = [
        (
            r["name"],
            r["family"],
            f"{r['file_size'] / 2**20:.1f}",
            f"{r['bits_per_weight']:.3f}",
            f"{r['ppl']:.3f}",
            f"{r['kld']:.5f}",
            f"{r['top1']:.2%}",
            f"{r['decode_tok_s']:.1f}",
            f"{r['convert_s']:.1f}",
        )
        for r in rows
    ]
    print_table(
        f"quant_frontier (reference: dequantized Q4_K_M, PPL {ref['ppl']:.3f}; text: {source})",
        cols,
        table,
    )
    console.print(spike_table(profile, {d.tensor for d in spike_plan.kept}))
    verdicts = summary(rows)
    for name, v in verdicts.items():
        console.print(
            f"{name}: dominates Q4_K_M={v['dominates_Q4_K_M']}, "
            f"beats random={v['beats_random']} (random mean KLD {v['random_mean_kld']})"
        )
    console.print(
        f"convert time: edgekit {times['edgekit_s']:.1f} s vs plain quantize "
        f"{times['plain_s']:.1f} s = {times['ratio']:.2f}x"
    )
    spike_png(
        profile, RESULTS_DIR / "quant_frontier_spikes.png", {d.tensor for d in spike_plan.kept}
    )
    frontier_png(rows, RESULTS_DIR / "quant_frontier.png")
    write_json(
        "quant_frontier",
        {
            "reference": ref,
            "eval_text": source,
            "rows": rows,
            "verdicts": verdicts,
            "convert_time": times,
            "reference_note": "F32 dequantization of the Q4_K_M default model",
        },
    )
    return verdict(
        times["ratio"] <= 1.3 and any(v["beats_random"] for v in verdicts.values()),
        "spike-aware beats random at the same budget; convert time <= 1.3x plain",
    )


if __name__ == "__main__":
    raise SystemExit(main())
