"""Byte-budget plans for the fused graph: measured (edgekit) and random (its control). Pure.

Both plan every weight node of the graph, the head and the embedding included, between 4 and 8
bits, and count bytes the same way (mixplan.padded over the ONNX stand-ins of quant/types.py), so
at one budget the two differ only in which nodes get 8 bits:
  measured: mixplan.plan_mix over each node's measured 4-bit cost (backends/onnx/sensitivity);
  random:   nodes in a seeded random order, each promoted while the budget still holds.
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace

from gguf import MODEL_TENSOR, TENSOR_NAMES, GGMLQuantizationType

from edgekit.errors import PlanError
from edgekit.quant.mixplan import MixTarget, padded, plan_mix
from edgekit.quant.planner import Decision, Plan, TensorLike
from edgekit.quant.types import NBITS_4, NBITS_8

# The builder's k_quant_mixed: blocks' modules that get more bits, by GGUF tensor name.
_BLOCK = re.compile(r"^blk\.(\d+)\.(\w+)\.weight$")
_MORE_BITS = frozenset(("attn_qkv", "attn_v", "ffn_down"))
_HEAD, _TIED_HEAD = (
    TENSOR_NAMES[t] + ".weight" for t in (MODEL_TENSOR.OUTPUT, MODEL_TENSOR.TOKEN_EMBD)
)
# plan_mix's rules, renamed to the spike planner's so plan.json and the report read alike.
_RULES = {"up": "kept", "stock": "base", "down": "base"}


def n_params(nodes: Sequence[TensorLike]) -> int:
    return sum(n.shape[0] * n.shape[1] for n in nodes)


def budget_for_bpw(nodes: Sequence[TensorLike], bpw: float) -> int:
    """Plan bytes of `bpw` bits per planned weight (the GGUF path's --target-bpw meaning)."""
    return int(bpw * n_params(nodes) / 8)


def kquant_mixed_budget(nodes: Sequence[TensorLike]) -> int:
    """Plan bytes of onnxruntime-genai's builder `k_quant_mixed` file, the stock ONNX int4 size:
    8 bits for the head and for the qkv/v and down projections of the first and last eighth of
    the blocks and every third block between (llama.cpp's Q4_K_M rule), 4 bits elsewhere. An
    untied embedding, which the builder leaves in float, is counted at 4 bits as edgekit writes
    it, so the budget is what edgekit's own 4/8-bit file of that layout takes."""
    blocks = {int(m[1]) for n in nodes if (m := _BLOCK.match(n.name))}
    n_blocks = max(blocks, default=-1) + 1
    eighth = n_blocks / 8
    more = {i for i in blocks if i < eighth or i >= 7 * eighth or (i - round(eighth)) % 3 == 2}
    head = _HEAD if any(n.name == _HEAD for n in nodes) else _TIED_HEAD
    total = 0
    for n in nodes:
        m = _BLOCK.match(n.name)
        high = n.name == head or (m is not None and int(m[1]) in more and m[2] in _MORE_BITS)
        total += padded(NBITS_8 if high else NBITS_4, n.shape[0] * n.shape[1])
    return total


def _check(nodes: Sequence[TensorLike], budget: int) -> None:
    smallest = sum(padded(NBITS_4, n.shape[0] * n.shape[1]) for n in nodes)
    if smallest > budget:
        raise PlanError(
            f"every node at 4 bits already needs {8 * smallest / n_params(nodes):.3f} bits per "
            f"weight, more than the budget ({8 * budget / n_params(nodes):.3f})",
            hint="Choose a higher --target-bpw.",
        )


def measured_plan(
    nodes: Sequence[TensorLike],
    costs: Mapping[str, float],
    budget: int,
    scores: Mapping[str, float] | None = None,
) -> Plan:
    """4-bit base; 8 bits where the measured cost saved per byte is highest, within `budget`."""
    _check(nodes, budget)
    options: dict[str, dict[GGMLQuantizationType, float]] = {
        n.name: {NBITS_4: float(costs.get(n.name, 0.0)), NBITS_8: 0.0} for n in nodes
    }
    # plan_mix logs a line per tensor at INFO, and onnxruntime's quantizer (imported by then)
    # has set the root logger to INFO: the decisions go to plan.json instead of the terminal.
    mix_log = logging.getLogger("edgekit.quant.mixplan")
    level = mix_log.level
    mix_log.setLevel(logging.WARNING)
    try:
        got = plan_mix(
            nodes,
            {n.name: NBITS_4 for n in nodes},
            options,
            MixTarget("4-bit", budget, "measured"),
            scores,
        )
    finally:
        mix_log.setLevel(level)
    decisions = tuple(replace(d, rule=_RULES.get(d.rule, d.rule)) for d in got.decisions)
    return Plan(
        "measured",
        {**got.params, "bpw": round(8 * budget / n_params(nodes), 4)},
        NBITS_4,
        decisions,
    )


def random_plan(
    nodes: Sequence[TensorLike],
    budget: int,
    seed: int = 0,
    scores: Mapping[str, float] | None = None,
) -> Plan:
    """The control: the same candidates and byte count as measured_plan, a random choice."""
    _check(nodes, budget)
    size = {n.name: n.shape[0] * n.shape[1] for n in nodes}
    used = sum(padded(NBITS_4, s) for s in size.values())
    order = sorted(size)
    random.Random(seed).shuffle(order)
    kept = set()
    for name in order:
        extra = padded(NBITS_8, size[name]) - padded(NBITS_4, size[name])
        if used + extra <= budget:
            kept.add(name)
            used += extra
    s = scores or {}
    decisions = tuple(
        Decision(
            n.name,
            NBITS_8 if n.name in kept else NBITS_4,
            "kept" if n.name in kept else "base",
            size[n.name],
            s.get(n.name),
        )
        for n in nodes
    )
    params = {"seed": seed, "budget_bytes": budget, "bpw": round(8 * budget / n_params(nodes), 4)}
    return Plan("random", params, NBITS_4, decisions)
