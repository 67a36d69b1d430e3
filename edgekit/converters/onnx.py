"""`edgekit convert MODEL --to onnx --precision int4|fp32|int8|spike`: the ONNX pipeline's front.

int4 (the default): the fused graph of onnxruntime-genai's builder, mixed 4/8-bit MatMulNBits
(edgekit.converters.onnx_int4). fp32 | int8 | spike: optimum's unfused export and dynamic int8
(edgekit.converters.onnx_int8), for families the builder does not cover. Either is built in a
hidden folder beside the output and renamed into place at the end: an error or Ctrl-C leaves no
partial model behind. The fp32 reference a quality table compares with is kept once per source
in the cache folder, never beside the output.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from edgekit.backends.onnx.int8 import PRECISIONS as UNFUSED
from edgekit.backends.onnx.model import ONNX_FILE
from edgekit.converters.onnx_export import hf_dir_from_gguf
from edgekit.converters.onnx_fused import GENAI_CONFIG, cached_fused_fp32, fused_cache_dir
from edgekit.converters.onnx_int4 import convert_fused
from edgekit.converters.onnx_int8 import convert_unfused
from edgekit.converters.request import ConvertRequest, ConvertResult, Say, say_nothing
from edgekit.errors import PlanError
from edgekit.outputs import check_output

FUSED = "int4"  # mixed 4/8-bit MatMulNBits on the builder's fused graph
PRECISIONS = (FUSED, *UNFUSED)


def convert_onnx(req: ConvertRequest) -> ConvertResult:
    """The CLI's ONNX convert: the folder, and the fp32 reference its quality is measured on
    when it will be evaluated (the unfused precisions also reuse it as their input)."""
    check_precision(req.precision)
    check_output(req.output, inputs=[req.source], folder=True)  # before minutes of export
    reference = None
    if req.evaluate and req.precision not in ("fp32", FUSED):
        reference = reference_dir(req.source, req.precision, req.trust_remote_code, req.say)
    result = convert_to_onnx(req, fp32_dir=reference)
    if req.evaluate and req.precision == FUSED:
        # The fused convert builds (or finds) this very graph in the cache: asking first would
        # dequantize a GGUF once for it and once more for the convert's spike calibration.
        reference = reference_dir(req.source, FUSED, req.trust_remote_code, req.say)
    result.reference = reference
    return result


def convert_to_onnx(req: ConvertRequest, fp32_dir: Path | None = None) -> ConvertResult:
    """Write an ONNX model folder at req.output. `fp32_dir` reuses an earlier fp32 export of the
    source (unfused precisions only)."""
    check_precision(req.precision)  # before minutes of export, not after
    check_output(req.output, inputs=[req.source], folder=True)
    if req.precision == FUSED:
        return convert_fused(req)
    return convert_unfused(req, fp32_dir)


def check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise PlanError(
            f"unknown ONNX precision {precision!r}", hint=f"Use {', '.join(PRECISIONS)}."
        )


def reference_dir(
    source: Path, precision: str, trust_remote_code: bool = False, log: Say = say_nothing
) -> Path:
    """The fp32 graph a converted folder is evaluated against, from the cache folder.

    int4 folders compare with the builder's fused fp32 graph; the unfused precisions with
    optimum's fp32 export, also built once per source next to it.
    """
    if precision == FUSED:
        folder = fused_cache_dir(source)
        if (folder / GENAI_CONFIG).is_file():
            return folder
        tmp = folder.parent / f".hf.{os.getpid()}"
        try:
            return cached_fused_fp32(
                source,
                lambda: hf_dir_from_gguf(source, tmp) if source.is_file() else source,
                trust_remote_code,
                log,
            )
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    folder = fused_cache_dir(source).with_name("fp32-optimum")
    if (folder / ONNX_FILE).is_file():
        log(f"fp32 reference from the cache: {folder}")
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    log(f"exporting the fp32 reference (cached in {folder})")
    req = ConvertRequest(
        source, folder, precision="fp32", trust_remote_code=trust_remote_code, say=log
    )
    convert_to_onnx(req)
    return folder
