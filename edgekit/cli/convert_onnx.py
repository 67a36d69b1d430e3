"""`edgekit convert --to onnx`: optimum's export, then int8 with the same planner as GGUF.

Kept apart from convert.py (the GGUF branch) because the two share only the recipe and the
report; the heavy work lives in edgekit.converters.onnx_convert.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgekit.cli.render import err_console, mib, out_console, print_json
from edgekit.errors import ConversionError

if TYPE_CHECKING:
    from edgekit.evaluate import EvalResult
    from edgekit.planner import Recipe


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
    from edgekit.converters.onnx_convert import convert_to_onnx

    stem = src.stem if src.is_file() else src.name
    out = (output or Path.cwd() / f"{stem}-onnx-{precision}").expanduser()
    say = (lambda _: None) if as_json else (lambda m: err_console.print(f"[dim]{m}[/dim]"))
    fp32_dir = None
    if evaluate is not None and precision != "fp32":
        # The quality table compares against the float export, so keep it beside the output.
        fp32_dir = out.with_name(out.name + "-fp32")
        convert_to_onnx(src, fp32_dir, "fp32", trust_remote_code=trust_remote_code, log=say)
    result = convert_to_onnx(
        src,
        out,
        precision,
        scores=scores,
        recipe=recipe,
        calib_texts=[_read(calib_file)] if calib_file else None,
        trust_remote_code=trust_remote_code,
        fp32_dir=fp32_dir,
        log=say,
    )
    rows = None
    if fp32_dir is not None and evaluate is not None:
        from edgekit.cli.eval import eval_rows

        rows = eval_rows(fp32_dir, [out], *evaluate, quiet=as_json)
    _report(result.output, result.precision, result.file_size, result.plan.kept, rows, as_json)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConversionError(f"cannot read the calibration text {path}: {e}") from None


def _report(
    path: Path,
    precision: str,
    size: int,
    kept: Any,
    rows: tuple[str, EvalResult, list[EvalResult]] | None,
    as_json: bool,
) -> None:
    from edgekit.cli.eval import print_eval_table

    if as_json:
        doc: dict[str, Any] = {"output": str(path), "precision": precision, "file_size": size}
        doc["kept"] = [{"tensor": d.tensor, "score": d.score} for d in kept]
        if rows:
            doc["eval"] = {"text": rows[0], "reference": rows[1].to_dict()}
            doc["eval"]["models"] = [r.to_dict() for r in rows[2]]
        print_json(doc)
        return
    names = ", ".join(f"{d.tensor} ({d.score:.1f})" for d in kept) or "none"
    out_console.print(f"[bold]ONNX {precision}[/bold]: {mib(size)} -> {path}\nkept fp32: {names}")
    if rows:
        print_eval_table(*rows)
