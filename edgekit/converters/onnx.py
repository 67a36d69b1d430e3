"""`edgekit convert MODEL --to onnx --precision int4|fp32|int8|spike`: the pipeline, atomically.

int4 (the default): source (HF folder, or GGUF dequantized to one) -> the fused fp32 graph of
onnxruntime-genai's builder (cached per source) -> [calibrate] -> plan -> mixed 4/8-bit
MatMulNBits graph + genai_config.json + plan.json + tokenizer files (edgekit.backends.onnx.nbits).
fp32 | int8 | spike: optimum's unfused export and dynamic int8 (MatMulInteger), for families the
builder does not cover. Everything is built in a hidden folder beside the output and renamed into
place at the end: an error or Ctrl-C leaves no partial model behind.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit.backends.onnx.int8 import (
    INT8,
    plan_onnx,
    quantize_graph,
    verify_plan,
    weight_nodes,
)
from edgekit.backends.onnx.int8 import (
    PRECISIONS as UNFUSED,
)
from edgekit.backends.onnx.model import ONNX_FILE, PLAN_FILE
from edgekit.converters.onnx_export import copy_side_files, export_onnx, hf_dir_from_gguf
from edgekit.errors import OutputPathError, PlanError
from edgekit.quant.planner import Plan, Recipe
from edgekit.quant.spikes import SpikeProfile, load_profile

Log = Callable[[str], None]
SPIKES_FILE = "spikes.json"
FUSED = "int4"  # mixed 4/8-bit MatMulNBits on the builder's fused graph
PRECISIONS = (FUSED, *UNFUSED)


@dataclass(frozen=True)
class OnnxConvertResult:
    output: Path
    precision: str
    plan: Plan
    file_size: int
    seconds: float
    profile: SpikeProfile | None


def check_output_dir(out: Path) -> None:
    if out.exists():
        raise OutputPathError(
            f"{out} already exists", hint="Remove it or choose another output folder."
        )
    if not out.parent.is_dir():
        raise OutputPathError(f"the output folder's parent {out.parent} does not exist")
    if not os.access(out.parent, os.W_OK | os.X_OK):
        raise OutputPathError(f"cannot write to {out.parent}", hint="Choose a writable folder.")


def _spike_profile(
    hf_dir: Path,
    scores: SpikeProfile | Path | None,
    calib_texts: Sequence[str] | None,
    trust_remote_code: bool,
) -> SpikeProfile:
    if isinstance(scores, SpikeProfile):
        return scores
    if scores is not None:
        return load_profile(scores)
    from edgekit.converters.calibrate import calibrate, load_for_calibration
    from edgekit.converters.onnx_export import silence_false_regex_warning
    from edgekit.texts.calibration import CALIBRATION_TEXT

    silence_false_regex_warning()

    loaded = load_for_calibration(hf_dir, trust_remote_code=trust_remote_code)
    return calibrate(loaded, list(calib_texts or [CALIBRATION_TEXT]))


def _graph_nodes(onnx_file: Path, config: dict[str, Any]) -> Any:
    import onnx

    from edgekit.converters.families import gguf_arch_name

    graph = onnx.load(str(onnx_file), load_external_data=False)  # names and shapes only
    arch = gguf_arch_name(str(config["model_type"]))
    return weight_nodes(graph, arch, int(config["num_hidden_layers"]))


def plan_record(
    the_plan: Plan, precision: str, source: Path, extra: dict[str, Any]
) -> dict[str, Any]:
    """The GGUF path's plan.json, plus what is specific to ONNX (which nodes, which target)."""
    return {
        **the_plan.to_dict(),
        "target": "onnx",
        "precision": precision,
        "source": str(source),
        **extra,
    }


def _dir_size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.iterdir() if f.name.startswith(ONNX_FILE))


def convert_to_onnx(
    source: Path,
    out: Path,
    precision: str = "spike",
    *,
    scores: SpikeProfile | Path | None = None,
    recipe: Recipe | None = None,
    calib_texts: Sequence[str] | None = None,
    per_channel: bool = True,
    trust_remote_code: bool = False,
    fp32_dir: Path | None = None,
    log: Log | None = None,
) -> OnnxConvertResult:
    """Write an ONNX model folder at `out`. `fp32_dir` reuses an earlier fp32 export of `source`."""
    say = log or (lambda _: None)
    start = time.perf_counter()
    source, out = Path(source), Path(out)
    if precision not in PRECISIONS:  # before minutes of export, not after
        raise PlanError(
            f"unknown ONNX precision {precision!r}", hint=f"Use {', '.join(PRECISIONS)}."
        )
    check_output_dir(out)
    if precision == FUSED:
        from edgekit.converters.onnx_int4 import convert_fused

        return convert_fused(
            source,
            out,
            scores=scores,
            recipe=recipe,
            calib_texts=calib_texts,
            trust_remote_code=trust_remote_code,
            log=say,
            start=start,
        )
    work = out.parent / f".{out.name}.{os.getpid()}.partial"
    work.mkdir()
    try:
        hf_dir = source
        # A GGUF is dequantized only when something needs the float model (export, calibration).
        needs_float = fp32_dir is None or (precision == "spike" and scores is None)
        if source.is_file() and needs_float:
            say(f"dequantizing {source.name} to a float checkpoint")
            hf_dir = hf_dir_from_gguf(source, work / "hf")
        owned = fp32_dir is None
        if fp32_dir is None:
            say("exporting to ONNX (fp32, with KV cache)")
            fp32_dir = export_onnx(hf_dir, work / "fp32", trust_remote_code)
        config = json.loads((fp32_dir / "config.json").read_text(encoding="utf-8"))
        nodes = _graph_nodes(fp32_dir / ONNX_FILE, config)
        profile = None
        if precision == "spike":
            say("calibrating spike scores" if scores is None else "reading spike scores")
            profile = _spike_profile(hf_dir, scores, calib_texts, trust_remote_code)
        the_plan = plan_onnx(nodes, precision, profile, recipe)
        final = work / "final"
        extra = _write_graph(fp32_dir, final, nodes, the_plan, precision, per_channel, owned, say)
        if profile is not None:
            profile.save(final / SPIKES_FILE)
            extra["calibration_hash"] = profile.calibration_hash
        (final / PLAN_FILE).write_text(
            json.dumps(plan_record(the_plan, precision, source, extra), indent=1) + "\n",
            encoding="utf-8",
        )
        final.rename(out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return OnnxConvertResult(
        out, precision, the_plan, _dir_size(out), time.perf_counter() - start, profile
    )


def _write_graph(
    fp32_dir: Path,
    final: Path,
    nodes: list[Any],
    the_plan: Plan,
    precision: str,
    per_channel: bool,
    owned: bool,
    say: Log,
) -> dict[str, Any]:
    final.mkdir()
    node_of = {n.name: n.node for n in nodes}
    extra: dict[str, Any] = {"nodes": node_of, "per_channel": per_channel}
    if precision == "fp32":
        for f in fp32_dir.iterdir():
            if f.name.startswith(ONNX_FILE):
                # Our own temporary export moves (a big model is GBs); a caller's is copied.
                place = shutil.move if owned else shutil.copy2
                place(f, final / f.name)
    else:
        say(f"quantizing {sum(t == INT8 for t in the_plan.types.values())} weight nodes to int8")
        lists = quantize_graph(
            fp32_dir / ONNX_FILE, final / ONNX_FILE, nodes, the_plan, per_channel
        )
        verify_plan(final / ONNX_FILE, lists["kept_float"])
        extra.update(quantized_nodes=lists["quantized"], kept_float_nodes=lists["kept_float"])
    copy_side_files(fp32_dir, final)
    return extra
