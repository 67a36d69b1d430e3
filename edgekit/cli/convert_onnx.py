"""`edgekit convert --to onnx`: the fused 4/8-bit graph (or optimum's int8), planned as for GGUF.

Kept apart from convert.py (the GGUF branch) because the two share only the recipe and the
report; the heavy work lives in edgekit.converters.onnx.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgekit.cli.render import err_console, mib, out_console, print_json
from edgekit.errors import ConversionError

if TYPE_CHECKING:
    from edgekit.converters.onnx import OnnxConvertResult
    from edgekit.evaluate import EvalResult
    from edgekit.quant.planner import Recipe


def convert_onnx(
    src: Path,
    output: Path | None,
    precision: str,
    recipe: Recipe,
    scores: Path | None,
    calib_file: Path | None,
    evaluate: tuple[Path | None, int, int] | None,
    trust_remote_code: bool,
    as_json: bool,
) -> None:
    """`evaluate` is (eval file, windows, threads), or None for --no-eval."""
    from edgekit.converters.onnx import convert_to_onnx

    stem = src.stem if src.is_file() else src.name
    out = (output or Path.cwd() / f"{stem}-onnx-{precision}").expanduser()
    say = (lambda _: None) if as_json else (lambda m: err_console.print(f"[dim]{m}[/dim]"))
    fp32_dir = None
    if evaluate is not None and precision != "fp32":
        from edgekit.converters.onnx_int4 import reference_dir

        # The quality table compares against the float graph, kept once per source in the cache
        # folder (never beside the output); the unfused precisions also reuse it as their input.
        fp32_dir = reference_dir(src, precision, trust_remote_code, say)
    result = convert_to_onnx(
        src,
        out,
        precision,
        scores=scores,
        recipe=recipe,
        calib_texts=[_read(calib_file)] if calib_file else None,
        trust_remote_code=trust_remote_code,
        fp32_dir=fp32_dir if precision != "int4" else None,
        log=say,
    )
    rows = None
    if fp32_dir is not None and evaluate is not None:
        from edgekit.cli.eval import eval_rows

        rows = eval_rows(fp32_dir, [out], *evaluate, quiet=as_json)
    _report(result, rows, as_json)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConversionError(f"cannot read the calibration text {path}: {e}") from None


def _report(
    result: OnnxConvertResult,
    rows: tuple[str, EvalResult, list[EvalResult]] | None,
    as_json: bool,
) -> None:
    from edgekit.cli.eval import print_eval_table

    path, precision, size, kept = (
        result.output,
        result.precision,
        result.file_size,
        result.plan.kept,
    )
    high = "8-bit" if precision == "int4" else "fp32"
    if as_json:
        doc: dict[str, Any] = {"output": str(path), "precision": precision, "file_size": size}
        doc["convert_s"] = round(result.seconds, 1)
        doc["bits_per_weight"] = round(result.plan.bpw, 4)
        doc["kept"] = [{"tensor": d.tensor, "type": d.type.name, "score": d.score} for d in kept]
        if rows:
            doc["eval"] = {"text": rows[0], "reference": rows[1].to_dict()}
            doc["eval"]["models"] = [r.to_dict() for r in rows[2]]
        print_json(doc)
        return
    names = ", ".join(f"{d.tensor} ({d.score:.1f})" for d in kept) or "none"
    out_console.print(
        f"[bold]ONNX {precision}[/bold]: {mib(size)} in {result.seconds:.0f} s -> {path}\n"
        f"kept {high}: {names}"
    )
    if rows:
        print_eval_table(*rows)
