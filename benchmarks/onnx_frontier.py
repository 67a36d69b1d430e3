"""onnx_frontier: edgekit's planned 4/8-bit ONNX against onnxruntime-genai's builder, size for size.

Source: a GGUF (default: the default Gemma 3 270M Q4_K_M), dequantized by transformers into a float
checkpoint; so the fp32 reference itself came from a quantized file. Every ONNX file here starts
from the same fused fp32 graph (onnxruntime-genai's builder, cached once per source in edgekit's
cache folder), except optimum+int8, which is optimum's unfused export with dynamic int8.

Rows: the builder's own int4 recipes (default RTN, k_quant, k_quant_mixed with and without shared
embeddings), optimum+int8, and edgekit (spike prior, --target-bpw) at three byte budgets: the
builder's k_quant file, its k_quant_mixed file and a larger one; at each budget a random control
promotes random layers under the same budget. Size = *.onnx + external data. Quality: PPL, KLD and
top-1 against the fp32 graph on the GPL-3 text (windows of 256 tokens, 64 positions per call).
Speed and RSS: `edgekit run` (greedy, a subprocess per model, interleaved rounds) and llama.cpp on
the source GGUF. Last, the mid-size edgekit folder is loaded in onnxruntime_genai and its greedy
tokens compared with `edgekit run`'s.

Usage: python -m benchmarks.onnx_frontier [--quick] [--model X.gguf] [--workdir DIR]
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
from edgekit.converters.onnx_fused import build_fused, cached_fused_fp32
from edgekit.eval_text import load_eval_text
from edgekit.runner import resolve_model

MIXED = "builder k_quant_mixed"


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true", help="fewer rows, windows and tokens")
    p.add_argument("--model", type=Path, help="a GGUF (default: the default model)")
    p.add_argument("--workdir", type=Path, help="keep the converted folders here (reused)")
    p.add_argument("--tokens", type=int, default=0, help="decode tokens (default 128, quick 48)")
    p.add_argument("--speed-one", type=Path, help=argparse.SUPPRESS)
    return p.parse_args()


def _timed(fn: Any, *a: Any, **k: Any) -> tuple[Any, float]:
    t = time.perf_counter()
    out = fn(*a, **k)
    return out, time.perf_counter() - t


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

    model = onnx.load(str(fp32 / "model.onnx"), load_external_data=False)
    nodes = fused_nodes(model)
    n_params = sum(n.shape[0] * n.shape[1] for n in nodes)
    total = sum(f.stat().st_size for f in fp32.iterdir() if f.name.startswith("model.onnx"))
    overhead = total - 4 * n_params  # norms, rotary tables, the graph itself
    return 8 * (budget - overhead) / n_params * (20 / 20.5)


def edgekit_rows(
    src: Path, hf: Path, work: Path, budgets: dict[str, int], fp32: Path, profile: Any
) -> dict[str, tuple[Path, float]]:
    from edgekit.backends.onnx.nbits import INT8
    from edgekit.converters.onnx_convert import convert_to_onnx
    from edgekit.planner import RandomLayers, TargetBpw

    out = {}
    for label, size in budgets.items():
        bpw = budget_bpw(fp32, size)
        for name, recipe in (
            (f"edgekit @{label}", TargetBpw(bpw=bpw, high_type=INT8)),
            (f"random @{label}", RandomLayers(seed=0, bpw=bpw, high_type=INT8)),
        ):
            folder = work / name.replace(" ", "_").replace("@", "at_")
            if not (folder / "model.onnx").is_file():
                console.print(f"[dim]converting {name} (plan {bpw:.3f} bpw)[/dim]")
                r = convert_to_onnx(src, folder, "int4", scores=profile, recipe=recipe)
                (folder / "convert_s.json").write_text(json.dumps(r.seconds))
            out[name] = (folder, float(json.loads((folder / "convert_s.json").read_text())))
    return out


def quality(fp32: Path, rows: dict[str, Path], windows: int) -> dict[str, Any]:
    from edgekit.backends.onnx.eval import evaluate_onnx

    names, out = list(rows), {}
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
    from edgekit.runner import open_runtime, plan_run

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


def speeds(paths: dict[str, Path], n: int, rounds: int) -> dict[str, dict[str, Any]]:
    best: dict[str, dict[str, Any]] = {}
    for _ in range(rounds):  # interleaved: machine load hits every row alike
        for name, path in paths.items():
            got = run_speed(path, n)
            old = best.get(name)
            if old is None or got.get("decode_tokens_per_s", 0) > old.get("decode_tokens_per_s", 0):
                best[name] = got
    return best


def genai_check(folder: Path, n: int) -> dict[str, Any]:
    from edgekit.backends.base import SamplingParams
    from edgekit.backends.onnx.genai import genai_greedy
    from edgekit.backends.onnx.runtime import OnnxRuntime
    from edgekit.devices import load_profile

    rt = OnnxRuntime(folder, load_profile("cpu"), n_ctx=n + 64)
    tokens = rt.prompt_tokens(COUNTING_PROMPT)
    rt.generate(tokens, SamplingParams(max_tokens=n, temperature=0.0))
    ours = rt.last_tokens
    rt.close()
    theirs = genai_greedy(folder, tokens, n)
    theirs = [t for t in theirs if t not in rt.tokenizer.eos_ids]
    same = 0
    for a, b in zip(ours, theirs, strict=False):
        if a != b:
            break
        same += 1
    return {"folder": str(folder), "n": len(ours), "same_prefix": same, "identical": ours == theirs}


def token_check(gguf: Path, hf: Path, folder: Path) -> dict[str, Any]:
    """Token ids of the eval text: llama.cpp (the GGUF's own tokenizer) vs transformers' tokenizer
    loaded from the dequantized folder (the one that prints the "incorrect regex pattern"
    warning for vocabularies over 100k), edgekit's tokenizer.json and onnxruntime_genai's."""
    import transformers

    from edgekit.backends.onnx.runtime import OnnxRuntime
    from edgekit.devices import load_profile
    from edgekit.runner import open_runtime, plan_run

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
    from edgekit.converters.spike_png import _pyplot

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    for r in rows:
        if r.get("kld") is None or r["variant"].startswith("fp32"):
            continue
        kind = r["variant"].split()[0]
        color = {"edgekit": "tab:green", "random": "tab:gray", "builder": "tab:blue"}.get(
            kind, "tab:red"
        )
        ax.scatter(r["mib"], r["kld"], color=color)
        ax.annotate(r["variant"], (r["mib"], r["kld"]), fontsize=7)
    ax.set_xlabel("MiB (*.onnx + external data)")
    ax.set_ylabel("KLD vs fp32 (lower is better)")
    ax.set_yscale("log")
    ax.set_title(title)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png)


def main() -> int:
    args = parse()
    if args.speed_one:
        print(json.dumps(speed_one(args.speed_one, args.tokens or 48)))
        return 0
    src = (args.model or resolve_model(None)).expanduser().resolve()
    work = args.workdir or (RESULTS_DIR / "onnx_frontier_work" / src.stem)
    work.mkdir(parents=True, exist_ok=True)
    n_tok = args.tokens or (48 if args.quick else 128)
    hf = work / "hf"
    if not (hf / "config.json").is_file():
        from edgekit.converters.onnx_export import hf_dir_from_gguf

        hf_dir_from_gguf(src, hf)
    fp32, fp32_s = _timed(cached_fused_fp32, src, lambda: hf)
    profile_file = work / "spikes.json"
    if profile_file.is_file():
        from edgekit.spikes import load_profile

        profile = load_profile(profile_file)
    else:
        from edgekit.calibration_text import CALIBRATION_TEXT
        from edgekit.converters.calibrate import calibrate, load_for_calibration

        profile = calibrate(load_for_calibration(hf), [CALIBRATION_TEXT])
        profile.save(profile_file)
    built = builder_rows(hf, work, args.quick)

    def size(p: Path) -> int:
        return sum(f.stat().st_size for f in p.iterdir() if f.name.startswith("model.onnx"))

    mixed_size = size(built[MIXED][0])
    # Three sizes around the builder's mixed file: below it, at it, above it.
    budgets = {"0.85x": int(0.85 * mixed_size), "k_quant_mixed": mixed_size}
    budgets["1.3x"] = int(1.3 * mixed_size)
    ours = edgekit_rows(src, hf, work, budgets, fp32, profile)
    rows_paths = {name: p for name, (p, _) in {**built, **ours}.items()}
    convert_s = {name: s for name, (_, s) in {**built, **ours}.items()}
    if not args.quick:
        from edgekit.converters.onnx_convert import convert_to_onnx

        opt = work / "optimum_int8"
        if not (opt / "model.onnx").is_file():
            r = convert_to_onnx(hf, opt, "int8")
            convert_s["optimum+int8"] = r.seconds
        rows_paths["optimum+int8"] = opt
    q = quality(fp32, rows_paths, 2 if args.quick else 4)
    speed_paths = {n: p for n, p in rows_paths.items() if not n.startswith("random")}
    sp = speeds({**speed_paths, "llama.cpp (source GGUF)": src}, n_tok, 1 if args.quick else 2)
    mid = rows_paths["edgekit @k_quant_mixed"]
    genai = genai_check(mid, n_tok)
    tokens = token_check(src, hf, mid)
    console.print(f"token ids vs llama.cpp: {tokens}")
    rows: list[dict[str, Any]] = []
    for name in ["fp32 (reference)", *rows_paths, "llama.cpp (source GGUF)"]:
        path = fp32 if name.startswith("fp32") else rows_paths.get(name, src)
        e = q.get(name)
        s = sp.get(name, {})
        rows.append(
            {
                "variant": name,
                "mib": (size(path) if path.is_dir() else path.stat().st_size) / 2**20,
                "ppl": e.ppl if e else None,
                "kld": e.kld if e else None,
                "top1": e.top1 if e else None,
                "decode_tok_s": s.get("decode_tokens_per_s"),
                "prompt_tok_s": s.get("prompt_tokens_per_s"),
                "peak_rss_mib": (s["peak_rss_bytes"] / 2**20) if "peak_rss_bytes" in s else None,
                "convert_s": fp32_s if name.startswith("fp32") else convert_s.get(name),
                "error": s.get("error"),
            }
        )

    def f(v: Any, fmt: str) -> str:
        return "—" if v is None else format(v, fmt)

    title = f"ONNX frontier: {src.name} (fp32 = builder's fused graph of the dequantized GGUF)"
    print_table(
        title,
        ["variant", "MiB", "PPL", "KLD", "top-1", "decode t/s", "prompt t/s", "RSS MiB", "conv s"],
        [
            [
                r["variant"], f(r["mib"], ",.1f"), f(r["ppl"], ".3f"), f(r["kld"], ".4f"),
                f(r["top1"], ".3f"), f(r["decode_tok_s"], ".1f"), f(r["prompt_tok_s"], ".0f"),
                f(r["peak_rss_mib"], ",.0f"), f(r["convert_s"], ".0f"),
            ]
            for r in rows
        ],
    )  # fmt: skip
    by = {r["variant"]: r for r in rows}
    mixed, at_mixed = by[MIXED], by["edgekit @k_quant_mixed"]
    checks = {
        "kld_30pct_below_k_quant_mixed_at_its_size": at_mixed["kld"] <= 0.7 * mixed["kld"]
        and at_mixed["mib"] <= mixed["mib"] * 1.001,
        "beats_random_at_every_size": all(
            by[f"edgekit @{b}"]["kld"] < by[f"random @{b}"]["kld"] for b in budgets
        ),
        "decode_at_least_0.95x_builder_mixed": (at_mixed["decode_tok_s"] or 0)
        >= 0.95 * (mixed["decode_tok_s"] or 1e9),
        "genai_same_greedy_tokens": bool(genai["identical"]),
    }
    console.print(f"genai check: {genai}")
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
            "budgets_bytes": budgets,
            "rows": rows,
            "genai": genai,
            "token_ids": tokens,
            "checks": checks,
            "png": str(png),
        },
    )
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
