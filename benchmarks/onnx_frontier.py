"""onnx_frontier: edgekit's planned 4/8-bit ONNX against onnxruntime-genai's builder, size for size.

Source: a GGUF (default: the default Gemma 3 270M Q4_K_M), dequantized by transformers into a float
checkpoint; so the fp32 reference itself came from a quantized file. Every ONNX file here starts
from the same fused fp32 graph (onnxruntime-genai's builder, cached once per source in edgekit's
cache folder), except optimum+int8, which is optimum's unfused export with dynamic int8.

Rows: the builder's own int4 recipes (default RTN, k_quant, k_quant_mixed with and without shared
embeddings), optimum+int8, edgekit's default convert, and its measured plan (per-node sensitivity
measured on the calibration text, head and embedding included) at byte budgets inside the
4->8-bit range (the builder's k_quant_mixed size, and others until three are sizes where the
choice can matter, see frontier_budgets); at each budget `--seeds` random controls promote
random nodes (head included) under the same budget.
Size = *.onnx + external data. Quality: PPL, KLD and top-1 against the fp32 graph on the GPL-3
text (windows of 256 tokens, 64 positions per call), not the calibration text.
Speed and RSS: `edgekit run` (greedy, a subprocess per model, `--rounds` interleaved rounds; the
decode ratio is the median of per-round ratios) and llama.cpp on the source GGUF. Last, the
mixed-size edgekit folder is loaded in onnxruntime_genai and its greedy tokens compared with
`edgekit run`'s, and token ids of the eval text are compared with llama.cpp's.

Usage: python -m benchmarks.onnx_frontier [--quick] [--model X.gguf] [--workdir DIR]; with
--shapes qwen2-0.5b,qwen2-1.5b: time and peak memory per convert step (benchmarks/onnx_steps.py).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks._common import COUNTING_PROMPT, RESULTS_DIR, console, print_table, write_json
from benchmarks.onnx_steps import shapes
from edgekit.backends.runner import resolve_model
from edgekit.converters.onnx_fused import build_fused, cached_fused_fp32
from edgekit.texts.evaluation import load_eval_text

MIXED = "builder k_quant_mixed"


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true", help="fewer rows, windows and tokens")
    p.add_argument("--model", type=Path, help="a GGUF (default: the default model)")
    p.add_argument("--workdir", type=Path, help="keep the converted folders here (reused)")
    p.add_argument("--tokens", type=int, default=0, help="decode tokens (default 64)")
    p.add_argument("--seeds", type=int, default=3, help="random controls per budget")
    p.add_argument("--rounds", type=int, default=5, help="interleaved speed rounds")
    p.add_argument("--windows", type=int, default=0, help="eval windows (default 4, quick 2)")
    p.add_argument("--shapes", help="random shapes (qwen2-0.5b,...): step memory and time only")
    p.add_argument("--speed-one", type=Path, help=argparse.SUPPRESS)
    return p.parse_args()


def _timed(fn: Any, *a: Any, **k: Any) -> tuple[Any, float]:
    t = time.perf_counter()
    return fn(*a, **k), time.perf_counter() - t


def builder_rows(hf: Path, work: Path, quick: bool) -> dict[str, tuple[Path, float]]:
    recipes: dict[str, dict[str, Any]] = {MIXED: {"int4_algo_config": "k_quant_mixed"}}
    if not quick:
        recipes["builder k_quant"] = {"int4_algo_config": "k_quant"}
        recipes["builder default"] = {}
        recipes["builder k_quant_mixed, unshared emb"] = {
            "int4_algo_config": "k_quant_mixed",
            "shared_embeddings": False,
        }
    out = {}
    for name, extra in recipes.items():
        folder = work / name.replace(" ", "_").replace(",", "")
        if (folder / "model.onnx").is_file():
            timed = folder / "convert_s.json"
            out[name] = (folder, float(json.loads(timed.read_text())) if timed.is_file() else -1)
            continue
        console.print(f"[dim]building {name}[/dim]")
        _, secs = _timed(build_fused, hf, folder, precision="int4", **extra)
        (folder / "convert_s.json").write_text(json.dumps(secs))
        out[name] = (folder, secs)
    return out


def budget_bpw(fp32: Path, budget: int) -> float:
    """The planner's bits per weight that fills `budget` bytes of file. The planner counts plan
    tensors in stand-in types (Q4_1: 20 B per 32 weights); k_quant also stores a zero point
    (20.5 B), so the target is scaled down by that ratio: the file lands at or under budget."""
    import onnx

    from edgekit.backends.onnx.nbits import fused_nodes

    nodes = fused_nodes(onnx.load(str(fp32 / "model.onnx"), load_external_data=False))
    n_params = sum(n.shape[0] * n.shape[1] for n in nodes)
    total = sum(f.stat().st_size for f in fp32.iterdir() if f.name.startswith("model.onnx"))
    overhead = total - 4 * n_params  # norms, rotary tables, the graph itself
    return 8 * (budget - overhead) / n_params * (20 / 20.5)


def edgekit_rows(
    src: Path, work: Path, budgets: dict[str, float], profile: Any, seeds: int, all_fit: set[str]
) -> dict[str, tuple[Path, float]]:
    """edgekit's measured plan and `seeds` random controls at each budget (plan bits/weight);
    no controls where every node fits at 8 bits (they would be the same file)."""
    from edgekit.converters.onnx import convert_to_onnx
    from edgekit.converters.request import ConvertRequest
    from edgekit.quant.planner import RandomLayers, TargetBpw
    from edgekit.quant.types import NBITS_8

    out: dict[str, tuple[Path, float]] = {}
    recipes: list[tuple[str, Any]] = [("edgekit default", None)]  # measured, k_quant_mixed size
    for label, bpw in budgets.items():
        recipes.append((f"edgekit @{label}", TargetBpw(bpw, high_type=NBITS_8)))
        recipes += [
            (f"random{s} @{label}", RandomLayers(seed=s, bpw=bpw, high_type=NBITS_8))
            for s in range(seeds if label not in all_fit else 0)
        ]
    for name, recipe in recipes:
        folder = work / name.replace(" ", "_").replace("@", "at_")
        if not (folder / "model.onnx").is_file():
            console.print(f"[dim]converting {name} ({recipe})[/dim]")
            req = ConvertRequest(
                src, folder, "onnx", plan_recipe=recipe, precision="int4", scores=profile
            )
            r = convert_to_onnx(req)
            (folder / "convert_s.json").write_text(json.dumps(r.seconds))
        out[name] = (folder, float(json.loads((folder / "convert_s.json").read_text())))
    return out


def choice_matters(fp32: Path, profile: Any, seeds: int) -> Any:
    """A test of a budget (plan bits/weight): does any random control plan differ from the
    measured plan there? (Both are planned, not written: cheap once the sensitivity is cached.)"""
    import onnx

    from edgekit.backends.onnx.nbits import NbitsParts, fused_nodes, node_scores
    from edgekit.backends.onnx.sensitivity import measure
    from edgekit.quant.onnx_plan import budget_for_bpw, measured_plan, random_plan
    from edgekit.texts.calibration import CALIBRATION_TEXT

    nodes = fused_nodes(onnx.load(str(fp32 / "model.onnx"), load_external_data=False))
    scores = node_scores(nodes, profile.scores("input"))
    parts = NbitsParts(fp32 / "model.onnx")
    costs = measure(parts, nodes, scores, CALIBRATION_TEXT).costs  # what convert measures

    def test(bpw: float) -> bool:
        budget = budget_for_bpw(nodes, bpw)
        ours = measured_plan(nodes, costs, budget).types
        return any(random_plan(nodes, budget, s).types != ours for s in range(seeds))

    return test


def frontier_budgets(
    fp32: Path, mixed_size: int, matters: Any
) -> tuple[dict[str, float], list[str], set[str]]:
    """Plan budgets (bits per planned weight) inside the range from all-4-bit (5.0 in the
    planner's stand-in types) to all-8-bit (9.0): the builder's k_quant_mixed size, then 15, 45,
    75, 30 and 60% of the way (skipping any within 10 points of the mixed size) until three
    budgets are ones where the choice can matter (`matters`: some random plan differs from the
    measured one). The third value lists the budgets where it cannot (no controls there)."""
    lo, hi = 5.0, 9.0
    mixed = budget_bpw(fp32, mixed_size)
    frac = (mixed - lo) / (hi - lo)
    budgets, notes, no_choice = {"k_quant_mixed": mixed}, [], set()
    if not (lo < mixed < hi and matters(mixed)):
        no_choice.add("k_quant_mixed")
        notes.append(
            f"at the builder's k_quant_mixed size ({frac:.0%} of the way from all-4-bit to "
            "all-8-bit) the measured plan and every random control are the same plan: the "
            "choice cannot matter there, so it is left out of the random check"
        )
    for f in (0.15, 0.45, 0.75, 0.3, 0.6):
        if len(budgets) - len(no_choice) >= 3:
            break
        bpw = lo + f * (hi - lo)
        if abs(f - frac) < 0.1:
            continue
        if matters(bpw):
            budgets[f"{bpw:.1f}bpw"] = bpw
        else:
            notes.append(f"{bpw:.1f} bpw skipped: every random control equals the measured plan")
    return budgets, notes, no_choice


def quality(fp32: Path, rows: dict[str, Path], windows: int) -> dict[str, Any]:
    from edgekit.backends.onnx.eval import evaluate_onnx
    from edgekit.backends.onnx.runtime import load_error

    out: dict[str, Any] = {}
    names = [n for n in rows if n.startswith("edgekit") or n.startswith("random")]
    for n in rows:
        if n not in names:
            err = load_error(rows[n])
            if err is None:
                names.append(n)
            else:
                console.print(f"[red]{n} does not load:[/] {err}")
                out[n] = err
    text = load_eval_text().text
    for i in range(0, len(names), 3):  # a few sessions at a time: this machine is small
        group = names[i : i + 3]
        ref, got = evaluate_onnx(fp32, [rows[n] for n in group], text, max_windows=windows)
        out["fp32 (reference)"] = ref
        out.update(dict(zip(group, got, strict=True)))
    return out


def speed_one(path: Path, n: int) -> dict[str, Any]:
    """What `edgekit run PATH -p ... --temp 0` does (plan, open through the backend registry,
    greedy generate), without the CLI around it: decode and prompt tok/s, peak RSS."""
    from dataclasses import asdict

    from edgekit.backends.base import SamplingParams
    from edgekit.backends.runner import open_runtime, plan_run

    rt = open_runtime(plan_run(path, "cpu", n + 64))
    try:
        result = rt.generate(
            rt.prompt_tokens(COUNTING_PROMPT), SamplingParams(max_tokens=n, temperature=0.0)
        )
    finally:
        rt.close()
    return {**asdict(result.stats), "text": result.text}


def run_speed(path: Path, n: int) -> dict[str, Any]:
    """speed_one in its own process, so the peak RSS is this model's alone."""
    cmd = [sys.executable, "-m", "benchmarks.onnx_frontier", "--speed-one", str(path)]
    cmd += ["--tokens", str(n)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=900)
    if done.returncode != 0:
        return {"error": done.stderr.strip()[-300:]}
    doc: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return doc


def speeds(
    paths: dict[str, Path], n: int, rounds: int, pairs: list[tuple[str, str]]
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """Interleaved rounds (load hits every row alike). Per row: the median round; per pair
    (a, b): each round's decode ratio a/b and their median."""
    import statistics

    got: dict[str, list[dict[str, Any]]] = {name: [] for name in paths}
    for _ in range(rounds):
        for name, path in paths.items():
            got[name].append(run_speed(path, n))

    def rate(d: dict[str, Any]) -> float:
        return float(d.get("decode_tokens_per_s") or 0.0)

    rows = {}
    for name, runs in got.items():
        ok = sorted((r for r in runs if "error" not in r), key=rate)
        rows[name] = ok[len(ok) // 2] if ok else runs[-1]
    ratios = {}
    for a, b in pairs:
        per = [rate(x) / rate(y) for x, y in zip(got[a], got[b], strict=True) if rate(y) > 0]
        ratios[f"{a} / {b}"] = {
            "rounds": [round(r, 3) for r in per],
            "median": statistics.median(per) if per else None,
        }
    return rows, ratios


def token_check(gguf: Path, hf: Path, folder: Path) -> dict[str, Any]:
    """Token ids of the eval text: llama.cpp (the GGUF's own tokenizer) vs transformers' tokenizer
    loaded from the dequantized folder (the one that prints the "incorrect regex pattern"
    warning for vocabularies over 100k), edgekit's tokenizer.json and onnxruntime_genai's."""
    import transformers

    from edgekit.backends.onnx.runtime import OnnxRuntime
    from edgekit.backends.runner import open_runtime, plan_run
    from edgekit.devices.profiles import load_profile

    text = load_eval_text().text[:20000]
    rt = open_runtime(plan_run(gguf, "cpu", 8192))
    ref = rt.tokenize(text)
    rt.close()
    tf: Any = transformers
    hf_ids = list(tf.AutoTokenizer.from_pretrained(hf)(text).input_ids)
    ours = OnnxRuntime(folder, load_profile("cpu"), 8192).tokenize(text)
    import onnxruntime_genai as og

    og_ids = [int(t) for t in og.Tokenizer(og.Model(str(folder))).encode(text)]

    def diff(ids: list[int]) -> dict[str, Any]:
        first = next((i for i, (a, b) in enumerate(zip(ref, ids, strict=False)) if a != b), None)
        return {"n": len(ids), "identical": ids == ref, "first_difference": first}

    return {
        "llama.cpp_n": len(ref),
        "transformers": diff(hf_ids),
        "edgekit": diff(ours),
        "onnxruntime_genai": diff(og_ids),
    }


def plot(rows: list[dict[str, Any]], title: str, png: Path) -> None:
    from edgekit.converters.spike_png import pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    for r in rows:
        if r.get("kld") is None or r["variant"].startswith("fp32"):
            continue
        kind = r["variant"].split()[0].rstrip("0123456789")
        colors = {"edgekit": "tab:green", "random": "tab:gray", "builder": "tab:blue"}
        ax.scatter(r["mib"], r["kld"], color=colors.get(kind, "tab:red"))
        ax.annotate(r["variant"], (r["mib"], r["kld"]), fontsize=7)
    ax.set_xlabel("MiB (*.onnx + external data)")
    ax.set_ylabel("KLD vs fp32 (lower is better)")
    ax.set_yscale("log")
    ax.set_title(title)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png)


def _size(p: Path) -> int:
    return sum(f.stat().st_size for f in p.iterdir() if f.name.startswith("model.onnx"))


def _prepare(args: argparse.Namespace) -> tuple[Path, Path, Path, Path, float, Any]:
    """(source GGUF, work folder, float checkpoint, cached fp32 graph, its build s, spikes)."""
    src = (args.model or resolve_model(None)).expanduser().resolve()
    work = args.workdir or (RESULTS_DIR / "onnx_frontier_work" / src.stem)
    work.mkdir(parents=True, exist_ok=True)
    hf = work / "hf"
    if not (hf / "config.json").is_file():
        from edgekit.converters.onnx_export import hf_dir_from_gguf

        hf_dir_from_gguf(src, hf)
    fp32, fp32_s = _timed(cached_fused_fp32, src, lambda: hf)
    profile_file = work / "spikes.json"
    if profile_file.is_file():
        from edgekit.quant.spikes import load_profile

        profile = load_profile(profile_file)
    else:
        from edgekit.converters.calibrate import calibrate, load_for_calibration
        from edgekit.texts.calibration import CALIBRATION_TEXT

        profile = calibrate(load_for_calibration(hf), [CALIBRATION_TEXT])
        profile.save(profile_file)
    return src, work, hf, fp32, fp32_s, profile


def _row(name: str, path: Path, e: Any, s: dict[str, Any], conv: float | None) -> dict[str, Any]:
    if isinstance(e, str):  # the graph does not load
        s, e = {"error": e}, None
    return {
        "variant": name,
        "mib": (_size(path) if path.is_dir() else path.stat().st_size) / 2**20,
        "ppl": e.ppl if e else None,
        "kld": e.kld if e else None,
        "top1": e.top1 if e else None,
        "decode_tok_s": s.get("decode_tokens_per_s"),
        "prompt_tok_s": s.get("prompt_tokens_per_s"),
        "peak_rss_mib": (s["peak_rss_bytes"] / 2**20) if "peak_rss_bytes" in s else None,
        "convert_s": conv,
        "error": s.get("error"),
    }


def _f(v: Any, fmt: str) -> str:
    return "—" if v is None else format(v, fmt)


def _versus_random(by: dict[str, dict[str, Any]], budgets: list[str], seeds: int) -> Any:
    import statistics

    out = {}
    for b in budgets:
        ours = by[f"edgekit @{b}"]["kld"]
        rand = [by[f"random{s} @{b}"]["kld"] for s in range(seeds)]
        out[b] = {
            "edgekit_kld": ours,
            "random_klds": rand,
            "random_median": statistics.median(rand),
            "beats_seeds": sum(ours < r for r in rand),
            "mib": by[f"edgekit @{b}"]["mib"],
            "random_mib": [by[f"random{s} @{b}"]["mib"] for s in range(seeds)],
        }
    return out


def main() -> int:
    args = parse()
    if args.speed_one:
        print(json.dumps(speed_one(args.speed_one, args.tokens or 48)))
        return 0
    if args.shapes:
        return shapes(args.shapes.split(","), args.workdir or RESULTS_DIR / "shapes")
    src, work, hf, fp32, fp32_s, profile = _prepare(args)
    n_tok = args.tokens or 64
    built = builder_rows(hf, work, args.quick)
    matters = choice_matters(fp32, profile, args.seeds)
    budgets, notes, all_fit = frontier_budgets(fp32, _size(built[MIXED][0]), matters)
    ours = edgekit_rows(src, work, budgets, profile, args.seeds, all_fit)
    rows_paths = {name: p for name, (p, _) in {**built, **ours}.items()}
    convert_s = {name: s for name, (_, s) in {**built, **ours}.items()}
    if not args.quick:
        from edgekit.converters.onnx import convert_to_onnx
        from edgekit.converters.request import ConvertRequest

        opt = work / "optimum_int8"
        if not (opt / "model.onnx").is_file():
            r = convert_to_onnx(ConvertRequest(hf, opt, "onnx", precision="int8"))
            convert_s["optimum+int8"] = r.seconds
        rows_paths["optimum+int8"] = opt
    q = quality(fp32, rows_paths, args.windows or (2 if args.quick else 4))
    ours_mid, llama = "edgekit @k_quant_mixed", "llama.cpp (source GGUF)"
    speed_paths = {MIXED: rows_paths[MIXED], ours_mid: rows_paths[ours_mid], llama: src}
    if not args.quick:
        speed_paths["builder default"] = rows_paths["builder default"]
    sp, ratios = speeds(speed_paths, n_tok, args.rounds, [(ours_mid, MIXED), (ours_mid, llama)])
    from edgekit.backends.onnx.genai import greedy_agreement

    genai = greedy_agreement(rows_paths[ours_mid], COUNTING_PROMPT, n_tok)
    tokens = token_check(src, hf, rows_paths[ours_mid])
    console.print(f"token ids vs llama.cpp: {tokens}")
    rows = [_row("fp32 (reference)", fp32, q.get("fp32 (reference)"), {}, fp32_s)]
    rows += [_row(n, p, q.get(n), sp.get(n, {}), convert_s.get(n)) for n, p in rows_paths.items()]
    rows.append(_row(llama, src, None, sp.get(llama, {}), None))
    title = f"ONNX frontier: {src.name} (fp32 = builder's fused graph of the dequantized GGUF)"
    print_table(
        title,
        ["variant", "MiB", "PPL", "KLD", "top-1", "decode t/s", "prompt t/s", "RSS MiB", "conv s"],
        [
            [
                r["variant"], _f(r["mib"], ",.1f"), _f(r["ppl"], ".3f"), _f(r["kld"], ".4f"),
                _f(r["top1"], ".3f"), _f(r["decode_tok_s"], ".1f"), _f(r["prompt_tok_s"], ".0f"),
                _f(r["peak_rss_mib"], ",.0f"), _f(r["convert_s"], ".0f"),
            ]
            for r in rows
        ],
    )  # fmt: skip
    print_table(
        f"decode ratio, {args.rounds} interleaved rounds of `edgekit run` ({n_tok} tokens)",
        ["pair", "per round", "median"],
        [[k, " ".join(f"{x:.2f}" for x in v["rounds"]), _f(v["median"], ".3f")]
         for k, v in ratios.items()],
    )  # fmt: skip
    by = {r["variant"]: r for r in rows}
    vs_random = _versus_random(by, [b for b in budgets if b not in all_fit], args.seeds)
    print_table(
        f"edgekit vs {args.seeds} random controls at the same byte budget (KLD)",
        ["budget", "edgekit MiB", "edgekit", "random (each seed)", "beats"],
        [[b, f"{v['mib']:.1f}", f"{v['edgekit_kld']:.4f}",
          " ".join(f"{x:.4f}" for x in v["random_klds"]), f"{v['beats_seeds']}/{args.seeds}"]
         for b, v in vs_random.items()],
    )  # fmt: skip
    mixed, at_mixed = by[MIXED], by[ours_mid]
    decode = ratios[f"{ours_mid} / {MIXED}"]["median"] or 0.0
    checks = {
        "kld_30pct_below_k_quant_mixed_at_its_size": at_mixed["kld"] <= 0.7 * mixed["kld"]
        and at_mixed["mib"] <= mixed["mib"] * 1.001,
        "beats_every_random_seed_at_every_size": all(
            v["beats_seeds"] == args.seeds for v in vs_random.values()
        ),
        "decode_median_ratio_at_least_0.95x_builder_mixed": decode >= 0.95,
        "genai_same_greedy_tokens": bool(genai["identical"]),
        "edgekit_tokens_match_llama.cpp": bool(tokens["edgekit"]["identical"]),
    }
    console.print(f"genai check: {genai}")
    for note in notes:
        console.print(f"[yellow]note:[/] {note}")
    for k, v in checks.items():
        console.print(f"{'[green]PASS' if v else '[red]FAIL'}[/] {k}")
    name = "onnx_frontier" + ("_quick" if args.quick else "") + f"_{src.stem}"
    png = RESULTS_DIR / f"{name}.png"
    plot(rows, title, png)
    write_json(
        name,
        {
            "model": str(src),
            "reference": "builder fp32 fused graph of the GGUF dequantized by transformers",
            "fp32_cache": str(fp32),
            "eval_text": load_eval_text().source,
            "quick": args.quick,
            "decode_tokens": n_tok,
            "budgets_bpw": budgets,
            "notes": notes,
            "rows": rows,
            "decode_ratios": ratios,
            "versus_random": vs_random,
            "genai": genai,
            "token_ids": tokens,
            "checks": checks,
            "png": str(png),
        },
    )
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
