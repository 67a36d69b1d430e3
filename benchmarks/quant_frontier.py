"""quant_frontier: llama.cpp's stock mixes (without and with an imatrix) vs edgekit's measured mix
vs a random control, at the sizes of llama.cpp's Q2_K, Q3_K_S, Q3_K_M, IQ4_XS and Q4_K_M.

Every file is written by llama-quantize from the same F32 base, which is the default model's
Q4_K_M file dequantized: the reference itself came from a Q4_K_M file, so a candidate on Q4_K_M's
grid is privileged (report it, judge the smaller sizes). Sensitivities are measured on the
calibration text; quality is measured on the evaluation text (the system's GPL-3), so the
benchmark never scores on the text the planner saw. The random control runs the same planner
with each tensor's measured costs dealt to another tensor of the same options at random.

Convert time is the first, uncached run (a fresh workspace): edgekit's own imatrix pass (which
also records the spike scores), the sensitivity measurement (for all five sizes at once) and
llama-quantize of edgekit's plan, against llama-imatrix + llama-quantize of llama.cpp's own
imatrix mix, timed in the same run.

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
from edgekit.backends.llama_cpp.eval import Windows, evaluate
from edgekit.backends.runner import resolve_model
from edgekit.converters.gguf import base_gguf
from edgekit.converters.measured import Workspace, measured_plan, target_for, write_measured
from edgekit.gguf.reader import read_header
from edgekit.quant.mixplan import Costs, plan_mix
from edgekit.texts.calibration import CALIBRATION_TEXT
from edgekit.texts.evaluation import load_eval_text

THREADS = 2
SIZES = ("Q2_K", "Q3_K_S", "Q3_K_M", "IQ4_XS", "Q4_K_M")
JUDGED = ("Q2_K", "Q3_K_S", "Q3_K_M", "IQ4_XS")
TEN_PERCENT = ("Q2_K", "Q3_K_S")


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
    ws: Workspace, work: Path, seeds: int
) -> tuple[list[dict[str, Any]], dict[str, float], dict[str, Any]]:
    times: dict[str, float] = {}
    # llama.cpp's side: llama-imatrix; edgekit's: its own pass (imatrix + spike scores).
    timed("llama-imatrix", times, tools.imatrix, ws.base, ws.text_file, work / "llama-im.gguf")
    timed("imatrix", times, ws.imatrix)
    scores = timed("spike prior", times, ws.spike_prior)
    targets = timed("stock dry runs", times, lambda: {s: target_for(ws, s, None) for s in SIZES})
    measured = timed("sensitivity", times, ws.costs, scores, list(targets.values()))
    rows: list[dict[str, Any]] = []
    tensors = read_header(ws.base).tensors
    for size, (target, stock) in targets.items():
        # Interleaved: llama.cpp's imatrix mix, then ours, at the same size.
        im_path = timed(f"llama-quantize {size}", times, ws.quantized, size, False)
        p, _ = measured_plan(ws, target, stock, scores, measured)
        out = work / f"edgekit-{size}.gguf"
        timed(f"edgekit write {size}", times, write_measured, ws, out, p, measured, "bench")
        stock_path = ws.quantized(size, False, False)
        rows += [
            {"name": size, "family": "llama.cpp", "size": size, "path": stock_path},
            {"name": f"{size}+imatrix", "family": "llama.cpp+imatrix", "size": size},
            {"name": f"edgekit@{size}", "family": "edgekit", "size": size, "path": out},
        ]
        rows[-2]["path"] = im_path
        for s in range(seeds):
            rp = plan_mix(tensors, stock, shuffled(measured.costs, s), target, scores, quiet=True)
            same = rp.types == p.types
            rout = out if same else work / f"random-{size}-{s}.gguf"
            if not same:
                write_measured(ws, rout, rp, measured, "bench-random")
            rows.append(
                {
                    "name": f"random@{size}#{s}",
                    "family": "random",
                    "size": size,
                    "path": rout,
                    "same_plan_as_edgekit": same,
                }
            )
    return rows, times, measured.to_dict()


def score(base: Path, rows: list[dict[str, Any]], windows: int) -> dict[str, Any]:
    text = load_eval_text()
    ref = None
    for i in range(0, len(rows), 5):
        batch = rows[i : i + 5]
        ref, results = evaluate(
            base,
            [r["path"] for r in batch],
            text.text,
            Windows(max_windows=windows),
            threads=THREADS,
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
        controls = [r for r in rows if r["family"] == "random" and r["size"] == size]
        distinct = [r["kld"] for r in controls if not r["same_plan_as_edgekit"]]
        gain = 1 - ours["kld"] / im["kld"] if im["kld"] > 0 else 0.0
        out[size] = {
            "not_larger": ours["file_size"] <= im["file_size"],
            "kld_gain_vs_imatrix_mix": round(gain, 4),
            "lower_kld": ours["kld"] < im["kld"],
            # A control whose plan is edgekit's own is the same file, not a competitor.
            "beats_random": all(ours["kld"] < k for k in distinct),
            "random_identical": len(distinct) < len(controls),
            "random_all_identical": bool(controls) and not distinct,
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
    seeds, windows = (1, 2) if quick else (2, 4)
    source = resolve_model(None)
    base = base_gguf(source, THREADS)
    # A fresh workspace: the convert time reported is the first, uncached run.
    ws = Workspace(base, CALIBRATION_TEXT, THREADS, cache=work / "cache")
    rows, times, sensitivity = make_files(ws, work, seeds)
    for r in rows:
        if r["family"] == "edgekit":
            tools.cli_smoke(r["path"])  # every output loads and generates in llama-cli
    t = time.perf_counter()
    meta = score(base, [r for r in rows if not r.get("same_plan_as_edgekit")], windows)
    for r in rows:
        if r.get("same_plan_as_edgekit"):
            twin = next(o for o in rows if o["family"] == "edgekit" and o["size"] == r["size"])
            r |= {k: v for k, v in twin.items() if k not in r}
    console.print(f"evaluated {len(rows)} files in {time.perf_counter() - t:.0f} s")
    meta["sensitivity"] = sensitivity
    return report(rows, meta, times, judge(rows, SIZES), quick)


def time_split(times: dict[str, float]) -> tuple[list[tuple[str, ...]], dict[str, float]]:
    """edgekit's convert (first run) against llama-imatrix + llama-quantize, at each size."""
    # One dry run of llama-quantize per size gives that size's stock types.
    dry = times["stock dry runs"] / len(SIZES)
    shared = times["imatrix"] + times["spike prior"] + times["sensitivity"] + dry
    table: list[tuple[str, ...]] = []
    ratios: dict[str, float] = {}
    for size in SIZES:
        ours = shared + times[f"edgekit write {size}"]
        theirs = times["llama-imatrix"] + times[f"llama-quantize {size}"]
        ratios[size] = round(ours / theirs, 3) if theirs else 0.0
        table.append(
            (
                size,
                f"{times['imatrix']:.1f} / {times['llama-imatrix']:.1f}",
                f"{times['spike prior']:.2f}",
                f"{times['sensitivity']:.1f}",
                f"{times[f'edgekit write {size}']:.1f}",
                f"{ours:.1f}",
                f"{theirs:.1f}",
                f"{ratios[size]:.2f}x",
            )
        )
    return table, ratios


def report(
    rows: list[dict[str, Any]],
    meta: dict[str, Any],
    times: dict[str, float],
    verdicts: dict[str, Any],
    quick: bool,
) -> int:
    from edgekit.converters.spike_png import frontier_png

    cols = ("file", "family", "MiB", "bpw", "PPL", "KLD", "top-1", "note")
    table = [
        (
            r["name"],
            r["family"],
            f"{r['file_size'] / 2**20:.2f}",
            f"{r['bits_per_weight']:.3f}",
            f"{r['ppl']:.3f}",
            f"{r['kld']:.5f}",
            f"{r['top1']:.2%}",
            "same plan as edgekit" if r.get("same_plan_as_edgekit") else "",
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
    split, ratios = time_split(times)
    print_table(
        "convert time, first (uncached) run, seconds: edgekit = own imatrix pass + spike prior + "
        "sensitivity (all 5 sizes) + dry run + llama-quantize of the plan; "
        "llama.cpp = llama-imatrix + llama-quantize of its imatrix mix",
        (
            "size",
            "imatrix ours/llama",
            "prior",
            "sensitivity",
            "quantize",
            "edgekit",
            "llama.cpp",
            "ratio",
        ),
        split,
    )
    sens = meta["sensitivity"]
    console.print(
        f"sensitivity: weighted errors {sens.get('errors_seconds')} s, "
        f"{len(sens['probes'])} probe(s) of {len(sens['kinds'])} kinds: "
        + ", ".join(f"{p['probe']} {p['kld']:.4f} ({p['seconds']} s)" for p in sens["probes"])
    )
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    png = frontier_png(
        rows, RESULTS_DIR / ("quant_frontier" + ("_quick" if quick else "") + ".png")
    )
    console.print(f"plot: {png}")
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
            "convert_ratio": ratios,
            "sensitivity": {k: v for k, v in sens.items() if k != "weighted_errors"},
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
