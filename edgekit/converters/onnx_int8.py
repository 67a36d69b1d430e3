"""`convert --to onnx --precision fp32|int8|spike`: optimum's unfused export, dynamic int8.

source (HF folder, or GGUF dequantized to one) -> optimum's fp32 export with KV cache
(edgekit.converters.onnx_export) -> [calibrate] -> plan (edgekit.backends.onnx.int8.plan_onnx)
-> quantize_dynamic's MatMulInteger for the planned nodes -> model.onnx + plan.json + tokenizer,
for families onnxruntime-genai's builder does not cover. Built in a hidden folder beside the
output and renamed into place at the end.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from edgekit.backends.onnx.int8 import plan_onnx, quantize_graph, verify_plan, weight_nodes
from edgekit.backends.onnx.model import ONNX_FILE, PLAN_FILE
from edgekit.converters.calibrate import spike_profile
from edgekit.converters.onnx_export import copy_side_files, export_onnx, hf_dir_from_gguf
from edgekit.converters.request import (
    SPIKES_FILE,
    ConvertRequest,
    ConvertResult,
    Say,
    kept_names,
    kept_rows,
    partial_folder,
    plan_record,
    written_size,
)
from edgekit.quant.planner import Plan
from edgekit.quant.types import DYNAMIC_INT8

# quantize_dynamic with one weight scale per output channel, as every measured export used.
PER_CHANNEL = True


def _graph_nodes(onnx_file: Path, config: dict[str, Any]) -> Any:
    import onnx

    from edgekit.converters.families import gguf_arch_name

    graph = onnx.load(str(onnx_file), load_external_data=False)  # names and shapes only
    arch = gguf_arch_name(str(config["model_type"]))
    return weight_nodes(graph, arch, int(config["num_hidden_layers"]))


def convert_unfused(req: ConvertRequest, fp32_dir: Path | None = None) -> ConvertResult:
    """Write req.output. `fp32_dir` reuses an earlier fp32 export of the source."""
    start = time.perf_counter()
    source, out, precision = req.source, req.output, req.precision
    profile = None
    with partial_folder(out) as work:
        hf_dir = source
        # A GGUF is dequantized only when something needs the float model (export, calibration).
        needs_float = fp32_dir is None or (precision == "spike" and req.scores is None)
        if source.is_file() and needs_float:
            req.say(f"dequantizing {source.name} to a float checkpoint")
            hf_dir = hf_dir_from_gguf(source, work / "hf")
        owned = fp32_dir is None
        if fp32_dir is None:
            req.say("exporting to ONNX (fp32, with KV cache)")
            fp32_dir = export_onnx(hf_dir, work / "fp32", req.trust_remote_code)
        config = json.loads((fp32_dir / "config.json").read_text(encoding="utf-8"))
        nodes = _graph_nodes(fp32_dir / ONNX_FILE, config)
        if precision == "spike":
            req.say("calibrating spike scores" if req.scores is None else "reading spike scores")
            profile = spike_profile(req, hf_dir)
        the_plan = plan_onnx(nodes, precision, profile, req.plan_recipe)
        final = work / "final"
        extra = _write_graph(fp32_dir, final, nodes, the_plan, precision, owned, req.say)
        if profile is not None:
            profile.save(final / SPIKES_FILE)
            extra["calibration_hash"] = profile.calibration_hash
        record = plan_record(the_plan, target="onnx", precision=precision, source=str(source))
        (final / PLAN_FILE).write_text(json.dumps(record | extra, indent=1) + "\n", "utf-8")
        final.rename(out)
    seconds = time.perf_counter() - start
    return onnx_result(req, the_plan, written_size(out, ONNX_FILE), seconds, profile)


def onnx_result(
    req: ConvertRequest, p: Plan, size: int, seconds: float, profile: Any
) -> ConvertResult:
    """The report of an ONNX folder, fused or not."""
    high = "8-bit" if req.precision == "int4" else "fp32"
    report = {
        "precision": req.precision,
        "convert_s": round(seconds, 1),
        "bits_per_weight": round(p.bpw, 4),
        "kept": kept_rows(p),
    }
    return ConvertResult(
        req.output,
        p,
        size,
        seconds,
        title=f"ONNX {req.precision}",
        measure=f" in {seconds:.0f} s",
        note=f"kept {high}: {kept_names(p)}",
        report=report,
        profile=profile,
    )


def _write_graph(
    fp32_dir: Path,
    final: Path,
    nodes: list[Any],
    the_plan: Plan,
    precision: str,
    owned: bool,
    say: Say,
) -> dict[str, Any]:
    final.mkdir()
    node_of = {n.name: n.node for n in nodes}
    extra: dict[str, Any] = {"nodes": node_of, "per_channel": PER_CHANNEL}
    if precision == "fp32":
        for f in fp32_dir.iterdir():
            if f.name.startswith(ONNX_FILE):
                # Our own temporary export moves (a big model is GBs); a caller's is copied.
                place = shutil.move if owned else shutil.copy2
                place(f, final / f.name)
    else:
        n = sum(t == DYNAMIC_INT8 for t in the_plan.types.values())
        say(f"quantizing {n} weight nodes to int8")
        lists = quantize_graph(
            fp32_dir / ONNX_FILE, final / ONNX_FILE, nodes, the_plan, PER_CHANNEL
        )
        verify_plan(final / ONNX_FILE, lists["kept_float"])
        extra.update(quantized_nodes=lists["quantized"], kept_float_nodes=lists["kept_float"])
    copy_side_files(fp32_dir, final)
    return extra
