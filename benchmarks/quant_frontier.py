"""quant_frontier: llama.cpp's stock mixes (without and with an imatrix) vs edgekit's measured mix
vs a random control, at the sizes of llama.cpp's Q2_K, Q3_K_S, Q3_K_M, IQ4_XS and Q4_K_M.

Every file is written by llama-quantize from the same F32 base, which is the default model's
Q4_K_M file dequantized: the reference itself came from a Q4_K_M file, so a candidate on Q4_K_M's
grid is privileged (report it, judge the smaller sizes). Sensitivities are measured on the
calibration text; quality is measured on the evaluation text (the system's GPL-3), so the
benchmark never scores on the text the planner saw. The random control runs the same planner
with each tensor's measured costs dealt to another tensor of the same options at random.

Usage: python -m benchmarks.quant_frontier [--quick]
"""

from __future__ import annotations

import random
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks._common import RESULTS_DIR, console, parse_args, print_table, verdict, write_json
from edgekit.backends.llama_cpp import tools
from edgekit.backends.llama_cpp.eval import evaluate
from edgekit.calibration_text import CALIBRATION_TEXT
from edgekit.convert import base_gguf
from edgekit.eval_text import load_eval_text
from edgekit.gguf_file import read_header
from edgekit.mixconvert import Workspace, measured_plan, target_for, write_measured
from edgekit.mixplan import Costs, plan_mix
from edgekit.runner import resolve_model

THREADS = 2
SIZES = ("Q2_K", "Q3_K_S", "Q3_K_M", "IQ4_XS", "Q4_K_M")
QUICK_SIZES = ("Q2_K",)
JUDGED = ("Q2_K", "Q3_K_S", "Q3_K_M", "IQ4_XS")
TEN_PERCENT = ("Q2_K", "Q3_K_S")
SCORES = RESULTS_DIR / "quant_frontier_scores.json"


def spike_scores(source: Path) -> tuple[dict[str, float], float]:
    """The spike prior (torch calibration), cached; returns (scores, seconds it took)."""
    from edgekit.convert import calibrate_source
    from edgekit.spikes import load_profile

    if SCORES.exists():
        return load_profile(SCORES).scores(), 0.0
    t = time.perf_counter()
    profile = calibrate_source(source, CALIBRATION_TEXT, quiet=True)
    seconds = time.perf_counter() - t
    SCORES.parent.mkdir(parents=True, exist_ok=True)
    profile.save(SCORES)
    return profile.scores(), seconds


def shuffled(costs: Costs, seed: int) -> dict[str, Any]:
    """Each tensor gets the measured costs of another tensor with the same options."""
    rng = random.Random(seed)
    by_options: dict[tuple[str, ...], list[str]] = {}
    for name, c in costs.items():
        by_options.setdefault(tuple(sorted(q.name for q in c)), []).append(name)
    out: dict[str, Any] = {}
    for names in by_options.values():
        dealt = rng.sample(names, len(names))
        out |= {n: costs[d] for n, d in zip(names, dealt, strict=True)}
    return out


def timed(label: str, times: dict[str, float], fn: Any, *args: Any, **kw: Any) -> Any:
    t = time.perf_counter()
    result = fn(*args, **kw)
    times[label] = round(time.perf_counter() - t, 2)
    return result


def make_files(
    ws: Workspace, work: Path, sizes: tuple[str, ...], seeds: int, scores: dict[str, float]
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    times: dict[str, float] = {}
    cached = ws.imatrix_path.exists()
    timed("imatrix", times, ws.imatrix)
    times["imatrix_cached"] = float(cached)  # then its time (and the pure runs') is not in here
    sens_windows, individual = (1, 0) if ws.quick else (4, 4)
    measured = timed("measure", times, ws.costs, scores, sens_windows, individual)
    rows: list[dict[str, Any]] = []
    for size in sizes:
        # Cached in the workspace like edgekit's own files; a cached file's time reads ~0.
        stock_path = timed(f"stock {size}", times, ws.quantized, size, False, False)
        im_path = timed(f"stock+imatrix {size}", times, ws.quantized, size, False)
        rows += [
            {"name": size, "family": "llama.cpp", "size": size, "path": stock_path},
            {
                "name": f"{size}+imatrix",
                "family": "llama.cpp+imatrix",
                "size": size,
                "path": im_path,
            },
        ]
        target, stock = target_for(ws, size, None)
        p, _ = measured_plan(ws, target, stock, scores, sens_windows, individual)
        out = work / f"edgekit-{size}.gguf"
        timed(f"edgekit plan+write {size}", times, write_measured, ws, out, p, measured, "bench")
        rows.append({"name": f"edgekit@{size}", "family": "edgekit", "size": size, "path": out})
        for s in range(seeds):
            tensors = read_header(ws.base).tensors
            rp = plan_mix(tensors, stock, shuffled(measured.costs, s), target, scores)
            rout = work / f"random-{size}-{s}.gguf"
            write_measured(ws, rout, rp, measured, "bench-random")
            rows.append(
                {"name": f"random@{size}#{s}", "family": "random", "size": size, "path": rout}
            )
    return rows, times


def score(base: Path, rows: list[dict[str, Any]], windows: int) -> dict[str, Any]:
    text = load_eval_text()
    ref = None
    for i in range(0, len(rows), 5):
        batch = rows[i : i + 5]
        ref, results = evaluate(
            base, [r["path"] for r in batch], text.text, max_windows=windows, threads=THREADS
        )
        for row, res in zip(batch, results, strict=True):
            row |= {k: v for k, v in res.to_dict().items() if k != "model"}
    assert ref is not None
    return {"reference": ref.to_dict(), "text": text.source}


def judge(rows: list[dict[str, Any]], sizes: tuple[str, ...]) -> dict[str, Any]:
    by = {(r["family"], r["size"]): r for r in rows if r["family"] != "random"}
    out: dict[str, Any] = {}
    for size in sizes:
        ours, im = by[("edgekit", size)], by[("llama.cpp+imatrix", size)]
        randoms = [r["kld"] for r in rows if r["family"] == "random" and r["size"] == size]
        gain = 1 - ours["kld"] / im["kld"] if im["kld"] > 0 else 0.0
        out[size] = {
            "not_larger": ours["file_size"] <= im["file_size"],
            "kld_gain_vs_imatrix_mix": round(gain, 4),
            "lower_kld": ours["kld"] < im["kld"],
            "beats_random": bool(randoms) and ours["kld"] < min(randoms),
            "judged": size in JUDGED,
            "needs_10pct": size in TEN_PERCENT,
        }
    return out


def main() -> int:
    args = parse_args(__doc__ or "")
    work = Path(tempfile.mkdtemp(prefix="quant_frontier-"))
    try:
        return run(work, args.quick)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(work: Path, quick: bool) -> int:
    sizes, seeds, windows = (QUICK_SIZES, 1, 2) if quick else (SIZES, 2, 4)
    source = resolve_model(None)
    base = base_gguf(source, THREADS)
    scores, t_prior = spike_scores(source)
    ws = Workspace(base, CALIBRATION_TEXT, THREADS, quick=quick)
    rows, times = make_files(ws, work, sizes, seeds, scores)
    times["spike prior (torch)"] = round(t_prior, 2)
    for r in rows:
        if r["family"] == "edgekit":
            tools.cli_smoke(r["path"])  # every output loads and generates in llama-cli
    t = time.perf_counter()
    meta = score(base, rows, windows)
    console.print(f"evaluated {len(rows)} files in {time.perf_counter() - t:.0f} s")
    return report(rows, meta, times, judge(rows, sizes), sizes, quick)


def report(
    rows: list[dict[str, Any]],
    meta: dict[str, Any],
    times: dict[str, float],
    verdicts: dict[str, Any],
    sizes: tuple[str, ...],
    quick: bool,
) -> int:
    from edgekit.converters.spike_png import frontier_png

    cols = ("file", "family", "MiB", "bpw", "PPL", "KLD", "top-1")
    table = [
        (
            r["name"],
            r["family"],
            f"{r['file_size'] / 2**20:.2f}",
            f"{r['bits_per_weight']:.3f}",
            f"{r['ppl']:.3f}",
            f"{r['kld']:.5f}",
            f"{r['top1']:.2%}",
        )
        for r in rows
    ]
    ref = meta["reference"]
    print_table(
        f"quant_frontier (reference: F32 of the Q4_K_M default model, PPL {ref['ppl']:.3f}; "
        f"text: {meta['text']})",
        cols,
        table,
    )
    for size, v in verdicts.items():
        console.print(f"{size}: {v}")
    first = sizes[0]
    ours = times["imatrix"] + times["measure"] + times[f"edgekit plan+write {first}"]
    plain = times["imatrix"] + times[f"stock+imatrix {first}"]
    ratio = ours / plain if plain else 0.0
    console.print(
        f"convert time at {first}: edgekit {ours:.1f} s (imatrix {times['imatrix']:.1f} + "
        f"measure {times['measure']:.1f} + plan/write {times[f'edgekit plan+write {first}']:.1f}) "
        f"vs llama-imatrix + llama-quantize {plain:.1f} s = {ratio:.2f}x "
        f"(spike prior: {times['spike prior (torch)']:.1f} s, cached when 0)"
    )
    frontier_png(rows, RESULTS_DIR / "quant_frontier.png")
    for r in rows:
        r["path"] = str(r["path"])
    write_json(
        "quant_frontier" + ("_quick" if quick else ""),
        {
            "reference": ref,
            "eval_text": meta["text"],
            "rows": rows,
            "verdicts": verdicts,
            "times": times,
            "convert_ratio": ratio,
            "reference_note": "F32 dequantization of the Q4_K_M default model",
        },
    )
    ok = all(
        v["not_larger"]
        and v["lower_kld"]
        and v["beats_random"]
        and (not v["needs_10pct"] or v["kld_gain_vs_imatrix_mix"] >= 0.10)
        for v in verdicts.values()
        if v["judged"]
    )
    return verdict(ok, "edgekit <= size and lower KLD than llama.cpp's imatrix mix, beats random")


if __name__ == "__main__":
    raise SystemExit(main())
