"""`edgekit convert`: one front for every target and recipe.

The command line becomes one `ConvertRequest` (edgekit/converters/request.py), which the pipeline
of its target and recipe turns into one `ConvertResult` (GGUF spike | target-bpw | random:
converters/gguf.py; GGUF measured: converters/measured.py; ONNX: converters/onnx.py); the result
is evaluated against its reference and rendered here the same way whatever produced it. The heavy
steps (torch calibration, HF conversion, llama.cpp, onnxruntime) load inside the pipelines.
Progress bars go to stderr; --json prints one object on stdout.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from edgekit.cli.eval import eval_rows, print_eval_table
from edgekit.cli.options import EvalFileOpt, JsonOpt, ThreadsOpt, WindowsOpt
from edgekit.cli.render import err_console, mib, out_console, print_json, progress_bar, user_errors
from edgekit.errors import ConversionError, PlanError
from edgekit.outputs import check_output, protect_inputs

if TYPE_CHECKING:
    from gguf import GGMLQuantizationType

    from edgekit.converters.request import ConvertRequest, ConvertResult
    from edgekit.evaluate import EvalReport
    from edgekit.quant.planner import Recipe


@dataclass(frozen=True)
class ConvertOptions:
    """The command line as typed; `build_request` checks and resolves it."""

    source: Path | None
    to: str
    output: Path | None
    precision: str
    base_type: str
    recipe: str | None
    mix: str | None
    threshold: float | None
    top_k: int | None
    target_bpw: float | None
    high_type: str
    output_type: str
    seed: int
    k: int | None
    scores: Path | None
    scores_out: Path | None
    calib_file: Path | None
    dry_run: bool
    force: bool
    no_eval: bool
    eval_file: Path | None
    eval_windows: int
    trust_remote_code: bool
    threads: int
    verbose: bool
    as_json: bool


def ggml_type(name: str) -> GGMLQuantizationType:
    from gguf import GGMLQuantizationType

    try:
        return GGMLQuantizationType[name.upper()]
    except KeyError:
        raise PlanError(
            f"unknown ggml type {name!r}", hint="Use e.g. Q4_K, Q5_K, Q6_K, Q8_0, Q4_0, F16."
        ) from None


def make_recipe(name: str, o: ConvertOptions, high: GGMLQuantizationType) -> Recipe:
    from edgekit.quant.planner import RandomLayers, Spike, TargetBpw

    if name == "spike":
        return Spike(threshold=o.threshold, top_k=o.top_k, high_type=high)
    if name == "target-bpw":
        if o.target_bpw is None:
            raise PlanError("--recipe target-bpw needs --target-bpw", hint="e.g. --target-bpw 7.3")
        return TargetBpw(bpw=o.target_bpw, high_type=high)
    if name == "random":
        if o.k is None and o.target_bpw is None:
            raise PlanError("--recipe random needs --k or --target-bpw")
        return RandomLayers(seed=o.seed, k=o.k, bpw=o.target_bpw, high_type=high)
    raise PlanError(f"unknown recipe {name!r}", hint="Use spike, target-bpw or random.")


def calib_text(calib_file: Path | None) -> str | None:
    """The --calib-file's text; None: the built-in calibration text."""
    if calib_file is None:
        return None
    try:
        return calib_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConversionError(f"cannot read the calibration text {calib_file}: {e}") from None


def default_recipe(to: str, precision: str, *spike_options: object) -> str:
    """The measured mix (GGUF) or 4/8-bit plan (int4 ONNX), unless an option of the spike recipe
    was given; the other ONNX precisions have no plan to measure."""
    if any(o is not None for o in spike_options):
        return "spike"
    return "spike" if to == "onnx" and precision != "int4" else "measured"


def default_output(source: Path, o: ConvertOptions, recipe: str) -> Path:
    """`{name}-{recipe}-{type}.gguf`, `{name}-measured-{mix}-{type}.gguf` or
    `{name}-onnx-{precision}` in the current folder."""
    stem = source.stem if source.is_file() else source.name
    if o.to == "onnx":
        return Path.cwd() / f"{stem}-onnx-{o.precision}"
    label = f"measured-{o.mix or 'bpw'}" if recipe == "measured" else recipe
    return Path.cwd() / f"{stem}-{label}-{o.base_type.lower()}.gguf"


def build_request(o: ConvertOptions) -> ConvertRequest:
    """Check the options (cheap errors first, before any work) and resolve them."""
    from edgekit.backends.runner import resolve_model
    from edgekit.converters.gguf import refuse_overwriting_source
    from edgekit.converters.request import ConvertRequest

    if o.to not in ("gguf", "onnx"):
        raise ConversionError(f"unknown output format --to {o.to}", hint="Use gguf or onnx.")
    src = resolve_model(o.source)
    protect_inputs(src, o.scores, o.calib_file, o.eval_file)
    if o.scores_out is not None:
        check_output(o.scores_out)  # before calibrating, not after
    base_t, high = ggml_type(o.base_type), ggml_type(o.high_type)
    recipe = o.recipe or default_recipe(o.to, o.precision, o.threshold, o.top_k, o.k)
    if recipe == "measured" and o.to == "onnx" and o.precision != "int4":
        raise PlanError(
            f"the measured recipe plans 4/8-bit weights, not --precision {o.precision}",
            hint="Use --precision int4.",
        )
    plan_recipe = None if recipe == "measured" else make_recipe(recipe, o, high)
    out = (o.output or default_output(src, o, recipe)).expanduser()
    if o.to == "gguf":
        refuse_overwriting_source(src, out, o.force)
    quiet = o.as_json
    return ConvertRequest(
        src,
        out,
        target=o.to,
        recipe=recipe,
        plan_recipe=plan_recipe,
        base_type=base_t,
        output_type=ggml_type(o.output_type),
        mix=o.mix,
        target_bpw=o.target_bpw,
        precision=o.precision,
        scores=o.scores,
        scores_out=o.scores_out,
        calib_text=calib_text(o.calib_file),
        dry_run=o.dry_run,
        evaluate=not o.no_eval,
        trust_remote_code=o.trust_remote_code,
        threads=o.threads,
        quiet=quiet,
        stage=lambda label: progress_bar(label, quiet),
        say=(lambda _: None) if quiet else (lambda m: err_console.print(f"[dim]{m}[/dim]")),
    )


def run_pipeline(req: ConvertRequest) -> ConvertResult:
    """The pipeline of the request's target and recipe."""
    if req.target == "onnx":
        from edgekit.converters.onnx import convert_onnx

        return convert_onnx(req)
    if req.recipe == "measured":
        from edgekit.converters.measured import convert_measured

        return convert_measured(req)
    from edgekit.converters.gguf import convert_gguf

    return convert_gguf(req)


def evaluate(result: ConvertResult, o: ConvertOptions) -> EvalReport | None:
    """The quality table against the result's reference, unless --no-eval or a dry run."""
    if o.no_eval or not result.written or result.reference is None:
        return None
    return eval_rows(
        result.reference, [result.output], o.eval_file, o.eval_windows, o.threads, o.as_json
    )


def render(result: ConvertResult, report: EvalReport | None, o: ConvertOptions) -> None:
    p, whole_plan = result.plan, o.verbose or result.show_plan
    if o.as_json:
        doc: dict[str, Any] = {
            "output": str(result.output) if result.written else None,
            "file_size": result.file_size,
            **result.report,
        }
        if whole_plan:
            doc["plan"] = p.to_dict()
        if report:
            doc["eval"] = report.to_dict()
        print_json(doc)
        return
    if whole_plan:
        for line in p.lines():
            out_console.print(line, markup=False)
    where = str(result.output) if result.written else "dry run, nothing written"
    out_console.print(
        f"[bold]{result.title}[/bold]{result.subtitle}: {mib(result.file_size)}{result.measure}"
        f" -> {where}\n{result.note}"
    )
    if report:
        print_eval_table(report)


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
        typer.Option(help="measured (default) | spike | target-bpw | random."),
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
    # Every parameter above is a field of ConvertOptions, by the same name.
    options = ConvertOptions(**locals())
    result = run_pipeline(build_request(options))
    render(result, evaluate(result, options), options)
