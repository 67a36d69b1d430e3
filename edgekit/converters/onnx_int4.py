"""`convert --to onnx --precision int4`: the fused graph, planned like the GGUF path, 4/8-bit.

source -> cached fp32 fused graph (edgekit.converters.onnx_fused) -> spike profile -> one plan
(edgekit.quant.planner, the same recipes and --target-bpw as GGUF) -> MatMulNBits per node + the
embedding (edgekit.backends.onnx.nbits) -> model.onnx + model.onnx.data + genai_config.json +
tokenizer + plan.json, renamed into place at the end.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgekit.backends.heap import release_memory
from edgekit.backends.onnx.model import ONNX_FILE, PLAN_FILE, SIDE_FILES
from edgekit.backends.onnx.nbits import (
    BLOCK_SIZE,
    FusedNode,
    NbitsParts,
    fused_nodes,
    nbits_type,
    node_scores,
    plan_nbits,
)
from edgekit.converters.calibrate import spike_profile
from edgekit.converters.onnx_export import hf_dir_from_gguf
from edgekit.converters.onnx_fused import cached_fused_fp32, fused_cached
from edgekit.converters.onnx_int8 import onnx_result
from edgekit.converters.request import (
    SPIKES_FILE,
    ConvertRequest,
    ConvertResult,
    partial_folder,
    plan_record,
    written_size,
)
from edgekit.errors import PlanError
from edgekit.quant.planner import Plan, RandomLayers, Recipe, Spike, TargetBpw
from edgekit.quant.spikes import SpikeProfile
from edgekit.quant.types import NBITS_4, NBITS_8, STANDS_FOR

if TYPE_CHECKING:
    from edgekit.backends.onnx.sensitivity import SensitivityResult

ALGORITHM = NbitsParts.algorithm  # onnxruntime's block-wise search (llama.cpp's make_qkx)


def onnx_recipe(recipe: Recipe | None) -> Recipe:
    """The recipe with its high type mapped onto what MatMulNBits stores (8-bit or float)."""
    chosen = recipe or Spike(high_type=NBITS_8)
    return replace(chosen, high_type=nbits_type(chosen.high_type))


def choose_plan(
    parts: NbitsParts,
    nodes: list[FusedNode],
    profile: SpikeProfile,
    req: ConvertRequest,
) -> tuple[Plan, SensitivityResult | None]:
    """The measured plan (the default) at --target-bpw or else at the size of the builder's own
    k_quant_mixed file, the head and embedding included; random with a budget: its control at
    the same budget; the spike recipe: its 4/8-bit plan."""
    from edgekit.quant.onnx_plan import budget_for_bpw, kquant_mixed_budget, random_plan

    recipe, log = onnx_recipe(req.plan_recipe), req.say
    scores = node_scores(nodes, profile.scores("input"))
    if req.recipe == "measured" and req.plan_recipe is None:
        bpw = req.target_bpw
        budget = kquant_mixed_budget(nodes) if bpw is None else budget_for_bpw(nodes, bpw)
        return _measured(parts, nodes, scores, req, budget)
    if isinstance(recipe, TargetBpw) and recipe.high_type == NBITS_8:
        return _measured(parts, nodes, scores, req, budget_for_bpw(nodes, recipe.bpw))
    if isinstance(recipe, RandomLayers) and recipe.bpw is not None and recipe.high_type == NBITS_8:
        return random_plan(nodes, budget_for_bpw(nodes, recipe.bpw), recipe.seed, scores), None
    try:
        return plan_nbits(nodes, profile.scores("input"), recipe), None
    except PlanError:
        if not getattr(recipe, "bpw", None):
            raise
        # The budget is below "4-bit body + 8-bit head": the head drops to 4 bits too.
        log("the budget leaves no room for an 8-bit head: planning it at 4 bits")
        return plan_nbits(nodes, profile.scores("input"), recipe, head=NBITS_4), None


def _measured(
    parts: NbitsParts,
    nodes: list[FusedNode],
    scores: dict[str, float],
    req: ConvertRequest,
    budget: int,
) -> tuple[Plan, SensitivityResult]:
    from edgekit.backends.onnx.sensitivity import measure
    from edgekit.quant.onnx_plan import measured_plan

    with req.stage("measuring sensitivity") as update:
        got = measure(parts, nodes, scores, req.calibration_text, req.say, update)
    return measured_plan(nodes, got.costs, budget, scores), got


def convert_fused(req: ConvertRequest) -> ConvertResult:
    """Write req.output: the cached fused fp32 graph, planned and quantized to 4/8 bits."""

    start = time.perf_counter()
    source, log = req.source, req.say
    with partial_folder(req.output) as work:
        hf: list[Path] = []

        def hf_dir() -> Path:  # a GGUF is dequantized at most once, and only if needed
            if not hf:
                if source.is_file():
                    with req.stage("dequantizing to a float checkpoint") as update:
                        hf.append(hf_dir_from_gguf(source, work / "hf", update))
                    release_memory()
                else:
                    hf.append(source)
            return hf[0]

        if not fused_cached(source):
            hf_dir()  # its own bar, before the builder's
        with req.stage("fp32 graph (onnxruntime-genai's builder)") as update:
            fp32 = cached_fused_fp32(source, hf_dir, req.trust_remote_code, log)
            update(1, 1)
        parts = NbitsParts(fp32 / ONNX_FILE)
        nodes = fused_nodes(parts.graph())
        log("calibrating spike scores" if req.scores is None else "reading spike scores")
        profile = spike_profile(req, hf_dir() if req.scores is None else None)
        release_memory()
        with req.stage("quantizing 4- and 8-bit") as update:
            parts.prepare(nodes, update)
        the_plan, measured = choose_plan(parts, nodes, profile, req)
        final = work / "final"
        final.mkdir()
        n8 = sum(d.type == NBITS_8 for d in the_plan.decisions)
        log(f"quantizing with {ALGORITHM}: {len(nodes) - n8} nodes 4-bit or float, {n8} 8-bit")
        with req.stage("writing") as update:
            lists = parts.write(final / ONNX_FILE, nodes, the_plan.types, update)
        for name in SIDE_FILES:  # genai_config.json, tokenizer, config
            if (fp32 / name).is_file():
                shutil.copy2(fp32 / name, final / name)
        profile.save(final / SPIKES_FILE)
        record = plan_record(the_plan, target="onnx", precision="int4", source=str(source))
        record |= _fused_record(nodes, lists, fp32, profile, measured)
        (final / PLAN_FILE).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
        final.rename(req.output)
    seconds = time.perf_counter() - start
    return onnx_result(req, the_plan, written_size(req.output, ONNX_FILE), seconds, profile)


def _fused_record(
    nodes: list[FusedNode],
    lists: Any,
    fp32: Path,
    profile: SpikeProfile,
    measured: SensitivityResult | None,
) -> dict[str, Any]:
    """What plan.json says about the fused graph beyond the plan itself."""
    extra: dict[str, Any] = {
        "graph": "onnxruntime-genai builder (fused), MatMulNBits",
        "algorithm": ALGORITHM,
        "block_size": BLOCK_SIZE,
        "types_stand_for": {t.name: what for t, what in STANDS_FOR.items()},
        "nodes": {n.name: n.node for n in nodes},
        "bits": lists,
        "fp32_reference": str(fp32),
        "calibration_hash": profile.calibration_hash,
    }
    if measured is not None:
        extra["sensitivity"] = measured.record
    return extra
