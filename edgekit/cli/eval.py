"""`edgekit eval`: a model's quality against its reference, on the back end that reads it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from edgekit.cli.options import EvalFileOpt, JsonOpt, ThreadsOpt, WindowsOpt
from edgekit.cli.render import mib, out_console, print_json, progress_bar, user_errors

if TYPE_CHECKING:
    from edgekit.evaluate import EvalReport


def eval_rows(
    reference: Path,
    models: list[Path],
    eval_file: Path | None,
    windows: int,
    threads: int,
    quiet: bool,
) -> EvalReport:
    """Evaluate on the back end that reads the reference (llama.cpp for GGUF, onnxruntime for
    an ONNX folder)."""
    from edgekit.backends import Capability, backend_for
    from edgekit.evaluate import EvalReport
    from edgekit.texts.evaluation import load_eval_text

    backend = backend_for(reference, Capability.EVALUATE)
    text = load_eval_text(eval_file)
    with progress_bar("evaluating", quiet) as update:
        ref, rows = backend.evaluate(reference, models, text.text, windows, threads, update)
    return EvalReport(text.source, ref, rows)


def print_eval_table(report: EvalReport) -> None:
    ref = report.reference
    table = Table(title=f"Quality vs reference (text: {report.text})", title_justify="left")
    for col in ("model", "size", "bpw", "PPL", "KLD", "top-1", "tokens"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for r in [ref, *report.models]:
        name = Path(r.model).name + (" (reference)" if r is ref else "")
        table.add_row(
            name,
            mib(r.file_size),
            f"{r.bits_per_weight:.3f}",
            f"{r.ppl:.3f}",
            f"{r.kld:.5f}",
            f"{r.top1:.2%}",
            str(r.n_tokens),
        )
    out_console.print(table)


@user_errors
def eval_command(
    models: Annotated[list[Path], typer.Argument(help="GGUF files or ONNX folders.")],
    reference: Annotated[
        Path,
        typer.Option("--reference", "-r", help="The F16/F32 GGUF (or fp32 ONNX) they came from."),
    ],
    eval_file: EvalFileOpt = None,
    eval_windows: WindowsOpt = 8,
    speed: Annotated[bool, typer.Option("--speed", help="Also measure decode tok/s.")] = False,
    threads: ThreadsOpt = 2,
    as_json: JsonOpt = False,
) -> None:
    """Perplexity, KL divergence and top-1 agreement against a reference, plus size and bpw.

    GGUF files are compared with a GGUF reference through llama.cpp; ONNX folders with their
    fp32 export through onnxruntime.
    """
    report = eval_rows(reference, models, eval_file, eval_windows, threads, as_json)
    if speed:
        for r in report.models:
            r.decode_tok_s = _decode_speed(Path(r.model), threads)
    if as_json:
        print_json(report.to_dict())
        return
    print_eval_table(report)
    if speed:
        for r in report.models:
            out_console.print(f"{Path(r.model).name}: {r.decode_tok_s:.1f} tok/s decode")


def _decode_speed(model: Path, threads: int) -> float:
    from edgekit.backends import Capability, backend_for

    return backend_for(model, Capability.EVALUATE).decode_speed(model, threads)
