"""The measured-mix planner: llama.cpp's stock mix in, a better mix at no more bytes out. Pure.

    plan_mix(tensors, stock types, costs, target, scores) -> Plan

`costs[t][type]` is the measured damage of tensor t at that type: the KL divergence it adds on
calibration text when it alone is quantized to it (measured against the float base, see
edgekit/backends/llama_cpp/sensitivity.py). The file's total damage is modelled as the sum over
tensors, and the planner picks one type per tensor to minimise it under the byte budget:

  1. Lagrangian relaxation: for a price lambda per byte every tensor independently takes
     argmin cost + lambda x bytes; bisect lambda to the cheapest mix that fits the budget;
  2. spend what is left: repeatedly take the upgrade with the best cost saved per byte that
     still fits, so the budget is met within a tensor's step, never exceeded;
  3. a tensor whose steps are a large part of the budget (a 262k-token embedding: +52 MiB from
     Q5_1 to Q8_0) makes the relaxation's answers jump: the mix between two of them (that
     tensor up, many small ones down) is never tried, and the budget between them is left
     unspent, so a larger budget could give the same file. Each type of such tensors (at most
     two) is therefore tried in turn with the rest planned as above, and the least total cost
     taken: the cost is then non-increasing in the budget. The runner-up of those (`plan_mixes`)
     is kept for the guard, which measures it where the best plan loses to the stock mix.

Tensors without costs (1-D, copies, anything not measured) keep their stock type. Sizes are
padded to the file's alignment, so the budget is the real size of the tensor data.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from gguf import GGMLQuantizationType

from edgekit.errors import PlanError
from edgekit.quant.planner import Decision, Plan, TensorLike, nbytes

log = logging.getLogger("edgekit.quant.mixplan")

Q = GGMLQuantizationType
ALIGN = 32
COARSE = 0.05  # a tensor whose types span more of the budget than this is planned exactly
Costs = Mapping[str, Mapping[GGMLQuantizationType, float]]


def padded(t: GGMLQuantizationType, n_elements: int) -> int:
    return -(-nbytes(t, n_elements) // ALIGN) * ALIGN


def _n(t: TensorLike) -> int:
    n = 1
    for d in t.shape:
        n *= d
    return n


@dataclass(frozen=True)
class MixTarget:
    """Start from llama.cpp's mix `stock`; the tensor data must fit in `budget_bytes`."""

    stock: str
    budget_bytes: int
    label: str = ""  # what the budget came from: "Q3_K_M" or "target-bpw 3.5"

    @property
    def is_stock_size(self) -> bool:
        """The budget is the stock mix's own size, so that mix is itself an answer."""
        return self.label == self.stock


def _choose(
    opts: Mapping[str, list[tuple[int, float, GGMLQuantizationType]]], lam: float
) -> dict[str, int]:
    """Index into each tensor's options of argmin cost + lam x bytes (fewer bytes on ties)."""
    return {
        name: min(range(len(o)), key=lambda i: (o[i][1] + lam * o[i][0], o[i][0]))
        for name, o in opts.items()
    }


def _total(opts: Mapping[str, list[tuple[int, float, Q]]], pick: Mapping[str, int]) -> int:
    return sum(opts[n][i][0] for n, i in pick.items())


def _fill(
    opts: Mapping[str, list[tuple[int, float, Q]]], pick: dict[str, int], room: int
) -> dict[str, int]:
    """Greedy: the upgrade saving most cost per byte that fits, until none does."""
    while True:
        best: tuple[float, str, int] | None = None
        for name, o in opts.items():
            b0, c0, _ = o[pick[name]]
            for i, (b, c, _) in enumerate(o):
                extra, saved = b - b0, c0 - c
                if saved <= 0 or extra > room:
                    continue
                ratio = saved / max(extra, 1)
                if best is None or ratio > best[0] or (ratio == best[0] and name < best[1]):
                    best = (ratio, name, i)
        if best is None:
            return pick
        _, name, i = best
        room -= opts[name][i][0] - opts[name][pick[name]][0]
        pick[name] = i


def _relaxed(opts: Mapping[str, list[tuple[int, float, Q]]], room: int) -> dict[str, int]:
    """Steps 1 and 2: the Lagrangian's cheapest mix that fits, then the greedy fill."""
    if not opts:
        return {}
    lo, hi = 0.0, 1.0
    while _total(opts, _choose(opts, hi)) > room:
        hi *= 4
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if _total(opts, _choose(opts, mid)) <= room else (mid, hi)
    return _fill(opts, _choose(opts, hi), room - _total(opts, _choose(opts, hi)))


def _coarse(opts: Mapping[str, list[tuple[int, float, Q]]], room: int) -> list[str]:
    """The (at most two) tensors whose byte range is over COARSE of the room, widest first."""
    span = {n: o[-1][0] - o[0][0] for n, o in opts.items()}
    wide = sorted((n for n in span if span[n] > COARSE * room), key=lambda n: (-span[n], n))
    return wide[:2]


def _ranked(opts: Mapping[str, list[tuple[int, float, Q]]], room: int) -> list[dict[str, int]]:
    """Step 3: every type of the coarse tensors, the rest relaxed; the two picks that fit with
    the least cost (fewer bytes on ties)."""
    coarse = _coarse(opts, room)
    rest = {n: o for n, o in opts.items() if n not in coarse}
    rest_min = sum(o[0][0] for o in rest.values())
    found: list[tuple[tuple[float, int], dict[str, int]]] = []
    for combo in itertools.product(*(range(len(opts[n])) for n in coarse)):
        pinned = dict(zip(coarse, combo, strict=True))
        used = _total(opts, pinned)
        if used + rest_min > room:
            continue
        pick = _relaxed(rest, room - used) | pinned
        found.append(((sum(opts[n][i][1] for n, i in pick.items()), _total(opts, pick)), pick))
    found.sort(key=lambda f: f[0])
    return [pick for _, pick in found[:2]]


def plan_mix(
    tensors: Sequence[TensorLike],
    stock: Mapping[str, GGMLQuantizationType],
    costs: Costs,
    target: MixTarget,
    scores: Mapping[str, float] | None = None,
    quiet: bool = False,
) -> Plan:
    """One type per tensor, minimising the summed measured cost within the byte budget
    (`quiet`: do not log the decisions, for plans that are only compared)."""
    plan = plan_mixes(tensors, stock, costs, target, scores)[0]
    for line in [] if quiet else plan.lines():
        log.info(line)
    return plan


def plan_mixes(
    tensors: Sequence[TensorLike],
    stock: Mapping[str, GGMLQuantizationType],
    costs: Costs,
    target: MixTarget,
    scores: Mapping[str, float] | None = None,
) -> list[Plan]:
    """plan_mix's plan, then the best plan with the coarse tensors at other types where there
    are coarse tensors: the guard measures it if the best one loses. Always offered, however far
    its predicted cost: on Gemma 3 float-like at Q5_K_M's size the best plan (embedding Q8_0)
    lost to the stock mix on calibration text while the plan with the embedding at Q5_1 tied
    with it, and the stock mix was then worse than smaller sizes' plans on evaluation text."""
    fixed = [t for t in tensors if t.name not in costs or not costs[t.name]]
    free = [t for t in tensors if costs.get(t.name)]
    fixed_bytes = sum(padded(stock.get(t.name, t.ggml_type), _n(t)) for t in fixed)
    opts = {
        t.name: sorted((padded(q, _n(t)), float(c), q) for q, c in costs[t.name].items())
        for t in free
    }
    room = target.budget_bytes - fixed_bytes
    smallest = sum(o[0][0] for o in opts.values())
    if smallest > room:
        raise PlanError(
            f"even the smallest types need {fixed_bytes + smallest:,} bytes, more than the "
            f"budget of {target.budget_bytes:,}",
            hint="Choose a larger target (a higher --target-bpw or a larger stock mix).",
        )
    return [_plan(tensors, stock, opts, pick, target, scores or {}) for pick in _ranked(opts, room)]


def _plan(
    tensors: Sequence[TensorLike],
    stock: Mapping[str, GGMLQuantizationType],
    opts: Mapping[str, list[tuple[int, float, Q]]],
    pick: Mapping[str, int],
    target: MixTarget,
    scores: Mapping[str, float],
) -> Plan:
    decisions = []
    for t in tensors:
        if t.name in opts:
            q = opts[t.name][pick[t.name]][2]
            before = stock.get(t.name, t.ggml_type)
            rule = (
                "stock"
                if q == before
                else ("up" if padded(q, 1024) > padded(before, 1024) else "down")
            )
            note = f"cost {opts[t.name][pick[t.name]][1]:.3g}, stock {before.name}"
            decisions.append(Decision(t.name, q, rule, _n(t), scores.get(t.name), note))
        else:
            rule = "1-D" if len(t.shape) < 2 else "copy"
            q = stock.get(t.name, t.ggml_type)
            decisions.append(Decision(t.name, q, rule, _n(t), scores.get(t.name)))
    params = {"stock": target.stock, "budget_bytes": target.budget_bytes, "target": target.label}
    base = max(stock.values(), key=list(stock.values()).count) if stock else Q.F32
    return Plan("measured", params, base, tuple(decisions))


def predicted_cost(p: Plan, costs: Costs) -> float:
    return sum(costs.get(d.tensor, {}).get(d.type, 0.0) for d in p.decisions)


def padded_bytes(p: Plan) -> int:
    return sum(padded(d.type, d.n_elements) for d in p.decisions)
