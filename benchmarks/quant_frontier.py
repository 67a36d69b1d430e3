"""quant_frontier: the whole ladder of llama.cpp's stock sizes (Q2_K .. Q6_K), each as llama.cpp's
stock mix, its imatrix mix, edgekit's measured mix (what `edgekit convert` ships, guard
included) and random controls, on one model.

Sources (`--source`):
- `float-like` (judged): the model's quantized file expanded to F32 and moved off every grid
  (edgekit/gguf/float_like.py), so no type reproduces any tensor, as with real float weights.
  How far that moved the model (PPL, KLD against the expansion) is printed first.
- `dequantized` (labelled, not judged): the expansion itself, where a tensor's source type is
  exact, so a planner that knows per-tensor errors parks tensors there for free.

Every file is written by llama-quantize from that F32 source, which is also the reference.
Sensitivities and the guard use the calibration text; quality (KLD, PPL, top-1) is measured on
the evaluation text (the system's GPL-3), which the planner never sees. The random control runs
the same planner with each tensor's measured costs dealt to another tensor with the same options.

Convert time is the first, uncached run: edgekit = its imatrix pass (with the spike scores),
the stock dry run, the sensitivity measurement (shared by all sizes), llama-quantize of its plan,
the stock mix the guard compares with, and the guard; llama.cpp = llama-imatrix + llama-quantize
of its imatrix mix, timed in the same run.

Usage: python -m benchmarks.quant_frontier [--quick] [--model GGUF] [--source dequantized]
"""

from __future__ import annotations

import argparse
import random
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks._common import RESULTS_DIR, console, print_table, verdict, write_json
from edgekit.backends.llama_cpp import tools
from edgekit.backends.llama_cpp.eval import Windows, evaluate
from edgekit.backends.runner import resolve_model
from edgekit.converters.gguf import base_gguf
from edgekit.converters.guard import paired_se
from edgekit.converters.measured import (
    Workspace,
    measured_plans,
    target_for,
    write_guarded,
    write_measured,
)
from edgekit.evaluate import standard_error
from edgekit.gguf.float_like import make_float_like
from edgekit.gguf.reader import read_header
from edgekit.paths import cache_dir
from edgekit.quant.mixplan import Costs, plan_mix
from edgekit.texts.calibration import CALIBRATION_TEXT
from edgekit.texts.evaluation import load_eval_text

THREADS = 2
SIZES = ("Q2_K", "Q3_K_S", "Q3_K_M", "IQ4_XS", "Q4_K_M", "Q5_K_M", "Q6_K")
KLD_RATIO = 0.75  # edgekit's KLD against the better of llama.cpp's two mixes
TIME_RATIO = 1.5
TIME_COLUMNS = tuple(
    "size,imatrix ours/llama,sensitivity,quantize,stock + guard,edgekit,llama.cpp,ratio".split(",")
)


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true", help="fewer windows and controls")
    p.add_argument("--model", type=Path, help="a quantized GGUF (default: the default model)")
    p.add_argument("--source", choices=("float-like", "dequantized"), default="float-like")
    p.add_argument("--sizes", default=",".join(SIZES), help="comma-separated stock sizes")
    p.add_argument("--windows", type=int, default=0, help="eval windows (default 8, quick 4)")
    return p.parse_args()


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


def source_of(model: Path, kind: str) -> tuple[Path, Path]:
    """(the F32 source and reference, the plain expansion it came from)."""
    expanded = base_gguf(model, THREADS)
    if kind == "dequantized":
        return expanded, expanded
    out = cache_dir() / "bases" / f"{expanded.stem}-float-like.gguf"
    if not out.exists():
        make_float_like(model, expanded, out)
    return out, expanded


def make_files(
    ws: Workspace, work: Path, sizes: tuple[str, ...], seeds: int
) -> tuple[list[dict[str, Any]], dict[str, float], dict[str, Any]]:
    times: dict[str, float] = {}
    timed("llama-imatrix", times, tools.imatrix, ws.base, ws.text_file, work / "llama-im.gguf")
    timed("imatrix", times, ws.imatrix)
    scores = timed("spike prior", times, ws.spike_prior)
    targets = timed("stock dry runs", times, lambda: {s: target_for(ws, s, None) for s in sizes})
    measured = timed("sensitivity", times, ws.costs, scores, list(targets.values()))
    rows: list[dict[str, Any]] = []
    tensors = read_header(ws.base).tensors
    for size, (target, stock) in targets.items():
        # llama.cpp's imatrix mix first: it is also the stock mix edgekit's guard compares with.
        im_path = timed(f"llama-quantize {size}", times, ws.quantized, size, False)
        plans, _ = measured_plans(ws, target, stock, scores, measured)
        out = work / f"edgekit-{size}.gguf"
        t = time.perf_counter()
        guard = write_guarded(ws, out, target, plans, measured, "bench")
        assert guard is not None  # every size here is a stock mix's
        p = plans[guard.plan - 1]
        times[f"edgekit write {size}"] = round(time.perf_counter() - t - guard.seconds, 2)
        times[f"guard {size}"] = round(guard.seconds, 2)
        rows += [
            {"name": size, "family": "llama.cpp", "size": size},
            {"name": f"{size}+imatrix", "family": "llama.cpp+imatrix", "size": size},
            {"name": f"edgekit@{size}", "family": "edgekit", "size": size, "path": out},
        ]
        rows[-3]["path"] = ws.quantized(size, False, False)
        rows[-2]["path"] = im_path
        rows[-1] |= {"guard": guard.to_dict(), "moved": sum(d.rule != "stock" for d in p.decisions)}
        rows += controls(ws, work, (size, target, stock), p, (measured, tensors, scores), seeds)
    return rows, times, measured.to_dict()


def controls(
    ws: Workspace, work: Path, at: tuple[Any, ...], p: Any, inputs: tuple[Any, ...], seeds: int
) -> list[dict[str, Any]]:
    (size, target, stock), (measured, tensors, scores) = at, inputs
    out = []
    for s in range(seeds):
        rp = plan_mix(tensors, stock, shuffled(measured.costs, s), target, scores, quiet=True)
        path = work / f"random-{size}-{s}.gguf"
        if rp.types != p.types:
            write_measured(ws, path, rp, measured, "bench-random")
            out.append({"name": f"random@{size}#{s}", "family": "random", "size": size})
            out[-1]["path"] = path
    return out


def score(base: Path, rows: list[dict[str, Any]], windows: int) -> dict[str, Any]:
    text = load_eval_text()
    ref = None
    for i in range(0, len(rows), 5):
        batch = rows[i : i + 5]
        cut = Windows(max_windows=windows)
        ref, results = evaluate(base, [r["path"] for r in batch], text.text, cut, threads=THREADS)
        for row, res in zip(batch, results, strict=True):
            row |= {k: v for k, v in res.to_dict().items() if k != "model"}
    assert ref is not None
    return {"reference": ref.to_dict(), "text": text.source}


def monotone(ours: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every pair of sizes: the larger file's KLD is not worse beyond twice the paired noise."""
    by_size = sorted(ours, key=lambda r: r["file_size"])
    out = []
    for i, small in enumerate(by_size):
        for large in by_size[i + 1 :]:
            se = paired_se(large["kld_windows"], small["kld_windows"])
            worse = large["kld"] - small["kld"]
            out.append(
                {
                    "smaller": small["size"],
                    "larger": large["size"],
                    "kld_rise": round(worse, 6),
                    "se": round(se, 6),
                    "ok": worse <= 2 * se,
                }
            )
    return out


def judge(rows: list[dict[str, Any]], sizes: tuple[str, ...]) -> dict[str, Any]:
    by = {(r["family"], r["size"]): r for r in rows if r["family"] != "random"}
    out: dict[str, Any] = {}
    for size in sizes:
        ours = by[("edgekit", size)]
        stock, im = by[("llama.cpp", size)], by[("llama.cpp+imatrix", size)]
        best = min(stock["kld"], im["kld"])
        distinct = [r["kld"] for r in rows if r["family"] == "random" and r["size"] == size]
        ratio = ours["kld"] / best if best > 0 else float("inf")
        shipped = ours["guard"]["shipped"]
        # The guard's fallback is llama.cpp's imatrix mix byte for byte, whose imatrix keys make
        # it a few hundred bytes larger than the plain mix.
        limit = im["file_size"] if shipped == "stock" else min(stock["file_size"], im["file_size"])
        out[size] = {
            "not_larger": ours["file_size"] <= limit,
            "kld_ratio_vs_best_llama": round(ratio, 4),
            "ratio_ok": ratio <= KLD_RATIO,
            "beats_random": all(ours["kld"] < k for k in distinct),
            "guard_shipped": shipped,
        }
    return out


def main() -> int:
    args = parse()
    work = Path(tempfile.mkdtemp(prefix="quant_frontier-"))
    try:
        return run(work, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(work: Path, args: argparse.Namespace) -> int:
    seeds, windows = (1, 4) if args.quick else (2, 8)
    windows = args.windows or windows
    sizes = tuple(args.sizes.split(","))
    model = resolve_model(args.model)
    base, expanded = source_of(model, args.source)
    source_row = None
    if base != expanded:
        cut = Windows(max_windows=windows)
        plain, (moved,) = evaluate(expanded, [base], load_eval_text().text, cut)
        source_row = moved.to_dict() | {"expanded_ppl": plain.ppl}
    # A fresh workspace: the convert time reported is the first, uncached run.
    ws = Workspace(base, CALIBRATION_TEXT, THREADS, cache=work / "cache")
    rows, times, sensitivity = make_files(ws, work, sizes, seeds)
    for r in rows:
        if r["family"] == "edgekit":
            tools.cli_smoke(r["path"])  # every output loads and generates in llama-cli
    t = time.perf_counter()
    meta = score(base, rows, windows)
    console.print(f"evaluated {len(rows)} files in {time.perf_counter() - t:.0f} s")
    meta |= {"sensitivity": sensitivity, "source": source_row, "model": model.name}
    return report(rows, meta, times, (args, sizes))


def time_split(
    times: dict[str, float], sizes: tuple[str, ...]
) -> tuple[list[tuple[str, ...]], dict[str, float]]:
    """edgekit's convert (first run) against llama-imatrix + llama-quantize, at each size."""
    dry = times["stock dry runs"] / len(sizes)  # one dry run per size gives its stock types
    shared = times["imatrix"] + times["spike prior"] + times["sensitivity"] + dry
    table: list[tuple[str, ...]] = []
    ratios: dict[str, float] = {}
    for size in sizes:
        write, guard = times[f"edgekit write {size}"], times[f"guard {size}"]
        stock = times[f"llama-quantize {size}"]  # the guard's stock mix: a user's convert writes it
        ours = shared + write + stock + guard
        theirs = times["llama-imatrix"] + stock
        ratios[size] = round(ours / theirs, 3) if theirs else 0.0
        table.append(
            (
                size,
                f"{times['imatrix']:.1f} / {times['llama-imatrix']:.1f}",
                f"{times['sensitivity']:.1f}",
                f"{write:.1f}",
                f"{stock:.1f} + {guard:.1f}",
                f"{ours:.1f}",
                f"{theirs:.1f}",
                f"{ratios[size]:.2f}x",
            )
        )
    return table, ratios


def print_rows(rows: list[dict[str, Any]], meta: dict[str, Any], label: str) -> None:
    cols = ("file", "family", "MiB", "bpw", "PPL", "KLD", "+-", "top-1", "note")
    table = []
    for r in rows:
        se = standard_error(r["kld_windows"])
        note = r["guard"]["shipped"] + f", {r['moved']} moved" if "guard" in r else ""
        table.append(
            (
                r["name"],
                r["family"],
                f"{r['file_size'] / 2**20:.2f}",
                f"{r['bits_per_weight']:.3f}",
                f"{r['ppl']:.3f}",
                f"{r['kld']:.5f}",
                f"{se:.5f}",
                f"{r['top1']:.2%}",
                note,
            )
        )
    ref = meta["reference"]
    title = f"quant_frontier, {meta['model']}, {label} (reference PPL {ref['ppl']:.3f}; "
    print_table(title + f"text: {meta['text']}, {ref['n_tokens']} tokens)", cols, table)


def report(
    rows: list[dict[str, Any]],
    meta: dict[str, Any],
    times: dict[str, float],
    run_args: tuple[argparse.Namespace, tuple[str, ...]],
) -> int:
    from edgekit.converters.spike_png import frontier_png

    args, sizes = run_args
    label = "float-like source" if args.source == "float-like" else "dequantized source"
    if meta["source"]:
        s = meta["source"]
        console.print(
            f"float-like source vs its plain expansion: PPL {s['expanded_ppl']:.3f} -> "
            f"{s['ppl']:.3f} ({s['ppl'] / s['expanded_ppl'] - 1:+.1%}), KLD {s['kld']:.4f}, "
            f"top-1 {s['top1']:.2%}"
        )
    print_rows(rows, meta, label)
    verdicts = judge(rows, sizes)
    mono = monotone([r for r in rows if r["family"] == "edgekit"])
    for size, v in verdicts.items():
        console.print(f"{size}: {v}")
    for m in mono:
        if not m["ok"]:
            console.print(f"NOT MONOTONE: {m}")
    split, ratios = time_split(times, sizes)
    print_table(
        "convert time, first (uncached) run, seconds: edgekit = own imatrix pass + spike prior + "
        f"sensitivity (all {len(sizes)} sizes) + dry run + llama-quantize of the plan + the "
        "stock mix and the guard; llama.cpp = llama-imatrix + llama-quantize of its imatrix mix",
        TIME_COLUMNS,
        split,
    )
    sens = meta["sensitivity"]
    console.print(
        f"sensitivity: weighted errors {sens.get('errors_seconds')} s, "
        f"{len(sens['probes'])} probe(s) of {len(sens['kinds'])} kinds: "
        + ", ".join(f"{p['probe']} {p['kld']:.4f} ({p['seconds']} s)" for p in sens["probes"])
    )
    name = f"quant_frontier_{Path(meta['model']).stem}_{args.source}" + ("_quick" * args.quick)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    console.print(f"plot: {frontier_png(rows, RESULTS_DIR / (name + '.png'))}")
    for r in rows:
        r["path"] = str(r["path"])
    write_json(
        name,
        {
            "model": meta["model"],
            "source": args.source,
            "float_like_vs_expansion": meta["source"],
            "reference": meta["reference"],
            "eval_text": meta["text"],
            "rows": rows,
            "verdicts": verdicts,
            "monotone": mono,
            "times": times,
            "convert_ratio": ratios,
            "sensitivity": {k: v for k, v in sens.items() if k != "weighted_errors"},
        },
    )
    if args.source == "dequantized":
        console.print("dequantized source: labelled, not judged (each type's own grid is exact)")
        return 0
    ok = all(v["not_larger"] and v["ratio_ok"] and v["beats_random"] for v in verdicts.values())
    ok = ok and all(m["ok"] for m in mono) and all(r <= TIME_RATIO for r in ratios.values())
    return verdict(
        ok,
        f"edgekit <= size, KLD <= {KLD_RATIO}x the better llama.cpp mix, beats random, "
        f"monotone, convert <= {TIME_RATIO}x llama.cpp's time",
    )


if __name__ == "__main__":
    raise SystemExit(main())
