"""`edgekit convert --to gguf` and `edgekit eval`: spike-aware mixed precision and its quality.

The heavy steps (torch calibration, HF conversion, llama.cpp) load inside the commands.
Progress bars and tables go to stderr/stdout consoles; --json prints one object on stdout.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from edgekit.cli.convert_measured import MeasuredSettings, convert_measured
from edgekit.cli.eval import eval_rows, print_eval_table
from edgekit.cli.options import EvalFileOpt, JsonOpt, ThreadsOpt, WindowsOpt
from edgekit.cli.render import mib, out_console, print_json, progress_bar, user_errors
from edgekit.errors import ConversionError, PlanError

if TYPE_CHECKING:
    from gguf import GGMLQuantizationType

    from edgekit.evaluate import EvalResult
    from edgekit.quant.planner import Plan, Recipe
    from edgekit.quant.spikes import SpikeProfile


def ggml_type(name: str) -> GGMLQuantizationType:
    from gguf import GGMLQuantizationType

    try:
        return GGMLQuantizationType[name.upper()]
    except KeyError:
        raise PlanError(
            f"unknown ggml type {name!r}", hint="Use e.g. Q4_K, Q5_K, Q6_K, Q8_0, Q4_0, F16."
        ) from None


def make_recipe(
    recipe: str,
    threshold: float | None,
    top_k: int | None,
    target_bpw: float | None,
    seed: int,
    k: int | None,
    high: GGMLQuantizationType,
) -> Recipe:
    from edgekit.quant.planner import RandomLayers, Spike, TargetBpw

    if recipe == "spike":
        return Spike(threshold=threshold, top_k=top_k, high_type=high)
    if recipe == "target-bpw":
        if target_bpw is None:
            raise PlanError("--recipe target-bpw needs --target-bpw", hint="e.g. --target-bpw 7.3")
        return TargetBpw(bpw=target_bpw, high_type=high)
    if recipe == "random":
        if k is None and target_bpw is None:
            raise PlanError("--recipe random needs --k or --target-bpw")
        return RandomLayers(seed=seed, k=k, bpw=target_bpw, high_type=high)
    raise PlanError(f"unknown recipe {recipe!r}", hint="Use spike, target-bpw or random.")


def _profile(
    source: Path,
    scores: Path | None,
    calib_file: Path | None,
    trust_remote_code: bool,
    quiet: bool,
) -> SpikeProfile:
    from edgekit.converters.gguf import calibrate_source
    from edgekit.quant.spikes import load_profile

    if scores is not None:
        return load_profile(scores)
    text = _calib_text(calib_file)
    with progress_bar("calibrating", quiet) as update:
        return calibrate_source(source, text, trust_remote_code, update, quiet=quiet)


def _calib_text(calib_file: Path | None) -> str:
    if calib_file is None:
        from edgekit.texts.calibration import CALIBRATION_TEXT

        return CALIBRATION_TEXT
    try:
        return calib_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConversionError(f"cannot read the calibration text {calib_file}: {e}") from None


def _default_recipe(to: str, target_bpw: float | None, *spike_options: object) -> str:
    """GGUF: the measured mix, unless an option of the spike recipe was given. ONNX: the measured
    plan at --target-bpw when one is given (its probes take minutes), otherwise spike."""
    if any(o is not None for o in spike_options):
        return "spike"
    if to == "onnx":
        return "target-bpw" if target_bpw is not None else "spike"
    return "measured"


def default_output(source: Path, base_type: GGMLQuantizationType, recipe: str) -> Path:
    stem = source.stem if source.is_file() else source.name
    return Path.cwd() / f"{stem}-{recipe}-{base_type.name.lower()}.gguf"


@user_errors
def convert_command(
    source: Annotated[
        Path | None,
        typer.Argument(help="A Hugging Face folder or a .gguf; the default model if omitted."),
    ] = None,
    to: Annotated[str, typer.Option("--to", help="Output format: gguf | onnx.")] = "gguf",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Output .gguf (or folder for onnx).")
    ] = None,
    precision: Annotated[
        str,
        typer.Option(
            "--precision",
            help="ONNX only: int4 (fused graph, 4/8-bit per the plan) | spike | int8 | fp32.",
        ),
    ] = "int4",
    base_type: Annotated[str, typer.Option("--type", help="Base ggml type.")] = "Q4_K",
    recipe: Annotated[
        str | None,
        typer.Option(help="measured (GGUF default) | spike (ONNX default) | target-bpw | random."),
    ] = None,
    mix: Annotated[
        str | None,
        typer.Option(
            "--mix", help="measured: the llama.cpp mix whose size to match (default Q4_K_M)."
        ),
    ] = None,
    threshold: Annotated[float | None, typer.Option(help="Keep scores >= this.")] = None,
    top_k: Annotated[int | None, typer.Option("--top-k", help="Keep at most k layers.")] = None,
    target_bpw: Annotated[float | None, typer.Option("--target-bpw")] = None,
    high_type: Annotated[str, typer.Option("--high-type", help="Type of kept layers.")] = "Q8_0",
    output_type: Annotated[str, typer.Option("--output-type", help="Output head.")] = "Q6_K",
    seed: Annotated[int, typer.Option(help="Seed of the random recipe.")] = 0,
    k: Annotated[int | None, typer.Option("--k", help="Layers for the random recipe.")] = None,
    scores: Annotated[Path | None, typer.Option(help="Saved spike scores (JSON).")] = None,
    scores_out: Annotated[Path | None, typer.Option("--scores-out")] = None,
    calib_file: Annotated[Path | None, typer.Option("--calib-file")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Plan only.")] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Allow -o to overwrite the source model.")
    ] = False,
    no_eval: Annotated[bool, typer.Option("--no-eval")] = False,
    eval_file: EvalFileOpt = None,
    eval_windows: WindowsOpt = 4,
    trust_remote_code: Annotated[bool, typer.Option("--trust-remote-code")] = False,
    threads: ThreadsOpt = 2,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="One line per tensor.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Spike-aware mixed precision: spiky layers kept high, the rest quantized lower."""
    from edgekit.backends.runner import resolve_model
    from edgekit.converters.gguf import (
        base_gguf,
        expected_file_size,
        plan_for,
        refuse_overwriting_source,
        write_planned,
    )

    if to not in ("gguf", "onnx"):
        raise ConversionError(f"unknown output format --to {to}", hint="Use gguf or onnx.")
    src = resolve_model(source)
    base_t, high = ggml_type(base_type), ggml_type(high_type)
    recipe = recipe or _default_recipe(to, target_bpw, threshold, top_k, k)
    if recipe == "measured":
        if to != "gguf":
            raise PlanError("the measured recipe writes GGUF only", hint="Use --to gguf.")
        out = (output or default_output(src, base_t, f"measured-{mix or 'bpw'}")).expanduser()
        refuse_overwriting_source(src, out, force)
        settings = MeasuredSettings(mix, target_bpw, dry_run, no_eval, eval_file, eval_windows)
        # The measured mix takes its spike prior from the imatrix's recorded activations; a
        # torch calibration runs only when its profile is given or asked for.
        profile = None
        if scores is not None or scores_out is not None:
            profile = _profile(src, scores, calib_file, trust_remote_code, as_json)
        if profile is not None and scores_out is not None:
            profile.save(scores_out)
        text = _calib_text(calib_file)
        convert_measured(src, out, profile, text, settings, threads, verbose, as_json)
        return
    rec = make_recipe(recipe, threshold, top_k, target_bpw, seed, k, high)
    if to == "onnx":
        from edgekit.cli.convert_onnx import convert_onnx

        evaluate = None if no_eval else (eval_file, eval_windows, threads)
        convert_onnx(
            src, output, precision, rec, scores, calib_file, evaluate, trust_remote_code, as_json
        )
        return
    out = (output or default_output(src, base_t, recipe)).expanduser()
    refuse_overwriting_source(src, out, force)
    with progress_bar("base GGUF", as_json) as update:
        base = base_gguf(src, threads, update)
    profile = _profile(src, scores, calib_file, trust_remote_code, as_json)
    if scores_out is not None:
        profile.save(scores_out)
    p = plan_for(base, profile, base_t, rec, ggml_type(output_type))
    size = expected_file_size(base, p)
    if dry_run:
        _report_plan(p, size, None, as_json, verbose=True)
        return
    with progress_bar("quantizing", as_json) as update:
        written = write_planned(base, out, p, profile, threads, update)
    results = None if no_eval else eval_rows(base, [out], eval_file, eval_windows, threads, as_json)
    _report_plan(p, out.stat().st_size, written.path, as_json, verbose, results)


def _report_plan(
    p: Plan,
    size: int,
    path: Path | None,
    as_json: bool,
    verbose: bool,
    results: tuple[str, EvalResult, list[EvalResult]] | None = None,
) -> None:
    if as_json:
        doc: dict[str, Any] = {"output": str(path) if path else None, "file_size": size}
        doc["plan"] = (
            p.to_dict() if verbose else {k: v for k, v in p.to_dict().items() if k != "tensors"}
        )
        doc["kept"] = [{"tensor": d.tensor, "type": d.type.name, "score": d.score} for d in p.kept]
        if results:
            doc["eval"] = {
                "text": results[0],
                "reference": results[1].to_dict(),
                "models": [r.to_dict() for r in results[2]],
            }
        print_json(doc)
        return
    if verbose:
        for line in p.lines():
            out_console.print(line, markup=False)
    kept = ", ".join(f"{d.tensor} ({d.score:.1f})" for d in p.kept) or "none"
    where = str(path) if path else "dry run, nothing written"
    out_console.print(
        f"[bold]{p.recipe}[/bold] over {p.base_type.name}: {mib(size)}, {p.bpw:.3f} bits/weight"
        f" -> {where}\nkept high: {kept}"
    )
    if results:
        print_eval_table(*results)
