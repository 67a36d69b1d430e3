"""`convert --to onnx --precision int4`: the fused graph, planned like the GGUF path, 4/8-bit.

source -> cached fp32 fused graph (edgekit.converters.onnx_fused) -> spike profile -> one plan
(edgekit.quant.planner, the same recipes and --target-bpw as GGUF) -> MatMulNBits per node + the
embedding (edgekit.backends.onnx.nbits) -> model.onnx + model.onnx.data + genai_config.json +
tokenizer + plan.json, renamed into place at the end.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gguf import GGMLQuantizationType

from edgekit.backends.onnx.model import ONNX_FILE, PLAN_FILE
from edgekit.backends.onnx.nbits import (
    BLOCK_SIZE,
    FLOAT,
    INT4,
    INT8,
    STANDS_FOR,
    FusedNode,
    NbitsParts,
    fused_nodes,
    node_scores,
    plan_nbits,
)
from edgekit.converters.onnx_fused import GENAI_CONFIG, cached_fused_fp32, fused_cache_dir
from edgekit.errors import PlanError
from edgekit.quant.planner import Plan, RandomLayers, Recipe, Spike, TargetBpw
from edgekit.quant.spikes import SpikeProfile, load_profile

if TYPE_CHECKING:
    from edgekit.backends.onnx.sensitivity import SensitivityResult
    from edgekit.converters.onnx import OnnxConvertResult

Log = Callable[[str], None]
Q = GGMLQuantizationType
# What the GGUF-minded --high-type means on MatMulNBits.
_ONNX_TYPE = {
    Q.Q8_0: INT8, Q.Q8_1: INT8, Q.Q6_K: INT8, Q.Q5_K: INT8, Q.Q5_0: INT8, Q.Q5_1: INT8,
    Q.Q4_0: INT4, Q.Q4_1: INT4, Q.Q4_K: INT4,
    Q.F16: FLOAT, Q.BF16: FLOAT, Q.F32: FLOAT,
}  # fmt: skip


def onnx_recipe(recipe: Recipe | None) -> Recipe:
    """The recipe with its high type mapped onto what MatMulNBits stores (8-bit or float)."""
    chosen = recipe or Spike(high_type=INT8)
    high = _ONNX_TYPE.get(chosen.high_type)
    if high is None:
        raise PlanError(
            f"--high-type {chosen.high_type.name} has no MatMulNBits counterpart",
            hint="Use Q8_0 (8-bit) or F32 (float) for ONNX.",
        )
    return dataclasses.replace(chosen, high_type=high)


def choose_plan(
    parts: NbitsParts,
    nodes: list[FusedNode],
    profile: SpikeProfile,
    recipe: Recipe,
    calib_texts: Sequence[str],
    log: Log,
) -> tuple[Plan, SensitivityResult | None]:
    """--target-bpw: the measured plan at that budget, the head and embedding included; random
    with a budget: its control at the same budget; otherwise the spike recipe's 4/8-bit plan."""
    from edgekit.quant.onnx_plan import budget_for_bpw, measured_plan, random_plan

    scores = node_scores(nodes, profile.scores("input"))
    if isinstance(recipe, TargetBpw) and recipe.high_type == INT8:
        from edgekit.backends.onnx.sensitivity import measure
        from edgekit.texts.calibration import CALIBRATION_TEXT

        text = "\n\n".join(calib_texts) if calib_texts else CALIBRATION_TEXT
        got = measure(parts, nodes, scores, text, log=log)
        return measured_plan(nodes, got.costs, budget_for_bpw(nodes, recipe.bpw), scores), got
    if isinstance(recipe, RandomLayers) and recipe.bpw is not None and recipe.high_type == INT8:
        return random_plan(nodes, budget_for_bpw(nodes, recipe.bpw), recipe.seed, scores), None
    try:
        return plan_nbits(nodes, profile.scores("input"), recipe), None
    except PlanError:
        if not getattr(recipe, "bpw", None):
            raise
        # The budget is below "4-bit body + 8-bit head": the head drops to 4 bits too.
        log("the budget leaves no room for an 8-bit head: planning it at 4 bits")
        return plan_nbits(nodes, profile.scores("input"), recipe, head=INT4), None


def convert_fused(
    source: Path,
    out: Path,
    *,
    scores: SpikeProfile | Path | None,
    recipe: Recipe | None,
    calib_texts: Sequence[str] | None,
    trust_remote_code: bool,
    log: Log,
    start: float,
    algorithm: str = "k_quant",
) -> OnnxConvertResult:
    import onnx

    from edgekit.converters.onnx import (
        SPIKES_FILE,
        OnnxConvertResult,
        _dir_size,
        _spike_profile,
        plan_record,
    )
    from edgekit.converters.onnx_export import hf_dir_from_gguf

    work = out.parent / f".{out.name}.{os.getpid()}.partial"
    work.mkdir()
    hf: list[Path] = []

    def hf_dir() -> Path:  # a GGUF is dequantized at most once, and only if needed
        if not hf:
            if source.is_file():
                log(f"dequantizing {source.name} to a float checkpoint")
                hf.append(hf_dir_from_gguf(source, work / "hf"))
            else:
                hf.append(source)
        return hf[0]

    try:
        fp32 = cached_fused_fp32(source, hf_dir, trust_remote_code, log)
        nodes = fused_nodes(onnx.load(str(fp32 / ONNX_FILE), load_external_data=False))
        chosen = onnx_recipe(recipe)
        log("calibrating spike scores" if scores is None else "reading spike scores")
        profile = (
            scores
            if isinstance(scores, SpikeProfile)
            else load_profile(scores)
            if scores is not None
            else _spike_profile(hf_dir(), None, calib_texts, trust_remote_code)
        )
        parts = NbitsParts(fp32 / ONNX_FILE, algorithm, cache=fp32.parent)
        texts = list(calib_texts or [])
        the_plan, measured = choose_plan(parts, nodes, profile, chosen, texts, log)
        final = work / "final"
        final.mkdir()
        n8 = sum(d.type == INT8 for d in the_plan.decisions)
        log(f"quantizing with {algorithm}: {len(nodes) - n8} nodes 4-bit or float, {n8} 8-bit")
        lists = parts.write(final / ONNX_FILE, nodes, the_plan.types)
        del parts
        for f in fp32.iterdir():
            if f.is_file() and not f.name.startswith(ONNX_FILE):
                shutil.copy2(f, final / f.name)  # genai_config.json, tokenizer, config
        profile.save(final / SPIKES_FILE)
        extra: dict[str, Any] = {
            "graph": "onnxruntime-genai builder (fused), MatMulNBits",
            "algorithm": algorithm,
            "block_size": BLOCK_SIZE,
            "types_stand_for": {t.name: what for t, what in STANDS_FOR.items()},
            "nodes": {n.name: n.node for n in nodes},
            "bits": lists,
            "fp32_reference": str(fp32),
            "calibration_hash": profile.calibration_hash,
        }
        if measured is not None:
            extra["sensitivity"] = measured.record
        (final / PLAN_FILE).write_text(
            json.dumps(plan_record(the_plan, "int4", source, extra), indent=1) + "\n",
            encoding="utf-8",
        )
        final.rename(out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return OnnxConvertResult(
        out, "int4", the_plan, _dir_size(out), time.perf_counter() - start, profile
    )


def reference_dir(
    source: Path, precision: str, trust_remote_code: bool = False, log: Log | None = None
) -> Path:
    """The fp32 graph a converted folder is evaluated against, from the cache folder.

    int4 folders compare with the builder's fused fp32 graph; the unfused precisions with
    optimum's fp32 export, also built once per source next to it.
    """
    say = log or (lambda _: None)
    from edgekit.converters.onnx import convert_to_onnx
    from edgekit.converters.onnx_export import hf_dir_from_gguf

    if precision == "int4":
        folder = fused_cache_dir(source)
        if (folder / GENAI_CONFIG).is_file():
            return folder
        tmp = folder.parent / f".hf.{os.getpid()}"
        try:
            return cached_fused_fp32(
                source,
                lambda: hf_dir_from_gguf(source, tmp) if source.is_file() else source,
                trust_remote_code,
                say,
            )
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    folder = fused_cache_dir(source).with_name("fp32-optimum")
    if (folder / ONNX_FILE).is_file():
        say(f"fp32 reference from the cache: {folder}")
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    say(f"exporting the fp32 reference (cached in {folder})")
    return convert_to_onnx(
        source, folder, "fp32", trust_remote_code=trust_remote_code, log=say
    ).output
