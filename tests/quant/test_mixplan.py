"""The measured-mix planner: exact budgets, measured costs decide, pure and deterministic."""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest
from gguf import GGMLQuantizationType

from edgekit.errors import PlanError
from edgekit.quant.mixplan import MixTarget, padded, padded_bytes, plan_mix, predicted_cost

Q = GGMLQuantizationType
LADDER = (Q.Q2_K, Q.Q3_K, Q.Q4_K, Q.Q6_K, Q.Q8_0)


@dataclass(frozen=True)
class T:
    name: str
    shape: tuple[int, ...]
    ggml_type: GGMLQuantizationType = Q.F32


def model(n_blocks: int = 4) -> list[T]:
    out = [T("token_embd.weight", (256, 1000))]
    for b in range(n_blocks):
        out += [T(f"blk.{b}.attn_norm.weight", (256,))]
        out += [T(f"blk.{b}.{k}.weight", (256, 512)) for k in ("attn_q", "ffn_down")]
    return out


def stock_of(tensors: list[T], q: GGMLQuantizationType = Q.Q4_K) -> dict[str, GGMLQuantizationType]:
    return {t.name: (q if len(t.shape) == 2 else Q.F32) for t in tensors}


def costs_for(tensors: list[T], weight: dict[str, float]) -> dict[str, dict[Q, float]]:
    """Cost falls 4x per extra bit (MSE of a b-bit quantizer), scaled per tensor."""
    from edgekit.quant.types import bits

    return {
        t.name: {q: weight.get(t.name, 1.0) * 4.0 ** (-bits(q)) for q in LADDER}
        for t in tensors
        if len(t.shape) == 2
    }


def budget_of(tensors: list[T], stock: dict[str, GGMLQuantizationType]) -> int:
    n = {t.name: t.shape[0] * (t.shape[1] if len(t.shape) > 1 else 1) for t in tensors}
    return sum(padded(stock[name], n[name]) for name in n)


def test_never_over_budget_and_close_to_it() -> None:
    tensors = model()
    stock = stock_of(tensors, Q.Q3_K)
    budget = budget_of(tensors, stock)
    p = plan_mix(tensors, stock, costs_for(tensors, {}), MixTarget("Q3_K_M", budget))
    assert padded_bytes(p) <= budget
    assert padded_bytes(p) >= 0.99 * budget


def test_the_sensitive_tensor_gets_the_bits() -> None:
    tensors = model()
    stock = stock_of(tensors, Q.Q3_K)
    costs = costs_for(tensors, {"blk.2.ffn_down.weight": 1000.0})
    p = plan_mix(tensors, stock, costs, MixTarget("Q3_K_M", budget_of(tensors, stock)))
    assert p.types["blk.2.ffn_down.weight"] == Q.Q8_0
    assert p.types["blk.2.attn_norm.weight"] == Q.F32  # unmeasured 1-D stays as stock has it
    assert predicted_cost(p, costs) < predicted_cost(
        plan_mix(tensors, stock, costs_for(tensors, {}), MixTarget("x", budget_of(tensors, stock))),
        costs,
    )


def test_beats_the_stock_mix_and_random_choices_at_the_same_budget() -> None:
    tensors = model(6)
    stock = stock_of(tensors, Q.Q4_K)
    rng = random.Random(0)
    weight = {t.name: rng.lognormvariate(0, 2) for t in tensors}
    costs = costs_for(tensors, weight)
    budget = budget_of(tensors, stock)
    p = plan_mix(tensors, stock, costs, MixTarget("Q4_K_M", budget))
    stock_cost = sum(costs[n][q] for n, q in stock.items() if n in costs)
    assert predicted_cost(p, costs) < stock_cost
    shuffled = dict(zip(costs, rng.sample(list(costs.values()), len(costs)), strict=True))
    control = plan_mix(tensors, stock, shuffled, MixTarget("Q4_K_M", budget))
    assert padded_bytes(control) <= budget
    assert predicted_cost(p, costs) < predicted_cost(control, costs)


def test_pure_and_deterministic() -> None:
    tensors = model()
    stock = stock_of(tensors)
    costs = costs_for(tensors, {"blk.1.attn_q.weight": 5.0})
    target = MixTarget("Q4_K_M", budget_of(tensors, stock))
    assert (
        plan_mix(tensors, stock, costs, target).types
        == plan_mix(tensors, stock, costs, target).types
    )


def test_a_budget_below_the_smallest_types_is_refused() -> None:
    tensors = model()
    with pytest.raises(PlanError, match="smallest types"):
        plan_mix(tensors, stock_of(tensors), costs_for(tensors, {}), MixTarget("x", 1000))


def test_decisions_say_what_moved() -> None:
    tensors = model()
    stock = stock_of(tensors, Q.Q3_K)
    costs = costs_for(tensors, {"blk.0.ffn_down.weight": 1000.0})
    p = plan_mix(tensors, stock, costs, MixTarget("Q3_K_M", budget_of(tensors, stock)))
    rules = {d.tensor: d.rule for d in p.decisions}
    assert rules["blk.0.ffn_down.weight"] == "up"
    assert "down" in rules.values()  # the bits came from somewhere
    assert p.to_dict()["params"]["budget_bytes"] == budget_of(tensors, stock)


def test_probe_type_skips_a_grid_the_weights_already_sit_on() -> None:
    """A dequantized file requantized to its own type injects no error: probing there would
    measure nothing, so the probe takes the quickest type that does inject one."""
    from edgekit.backends.llama_cpp.sensitivity import probe_type

    err = {Q.Q4_0: 9.0, Q.IQ4_NL: 6.0, Q.Q5_0: 0.0, Q.Q5_1: 1.0, Q.Q8_0: 0.01}
    assert probe_type(err) == Q.Q4_0
    assert probe_type(err | {Q.Q5_0: 2.0}) == Q.Q5_0  # quicker than Q4_0, as lossy
    ladder = {Q.Q2_K: 50.0, Q.Q3_K: 20.0, Q.Q4_K: 5.0, Q.Q6_K: 0.5, Q.Q8_0: 0.01}
    assert probe_type(ladder) == Q.Q3_K  # 3..6 bits: never Q2_K, never Q6_K


def test_unprobed_kinds_take_the_measured_rates() -> None:
    from edgekit.backends.llama_cpp.sensitivity import Probe, kind_costs
    from edgekit.gguf.reader import TensorInfo

    kinds = {
        k: [TensorInfo(f"blk.0.{k}", (256, 256), Q.F32, 0)]
        for k in ("attn_q.weight", "ffn_down.weight", "attn_v.weight")
    }
    errors = {ts[0].name: {Q.Q4_K: 10.0, Q.Q8_0: 0.0} for ts in kinds.values()}
    probes = [
        Probe("a", "attn_q.weight", Q.Q4_K, kld=0.01, error=10.0),
        Probe("b", "ffn_down.weight", Q.Q4_K, kld=0.04, error=10.0),
    ]
    weights = {n: None for n in errors}
    lo = kind_costs(kinds, errors, probes, min, weights)
    hi = kind_costs(kinds, errors, probes, max, weights)
    assert lo["blk.0.attn_v.weight"][Q.Q4_K] == pytest.approx(0.01)
    assert hi["blk.0.attn_v.weight"][Q.Q4_K] == pytest.approx(0.04)
    assert hi["blk.0.ffn_down.weight"][Q.Q4_K] == pytest.approx(0.04)
    assert all(c[Q.Q8_0] == 0.0 for c in hi.values())  # no error, no cost


def _optimum(tensors: list[T], costs: dict[str, dict[Q, float]], budget: int) -> float:
    """The least summed cost within the budget, every combination of types tried."""
    import itertools

    free = [t for t in tensors if t.name in costs]
    n = {t.name: t.shape[0] * t.shape[1] for t in free}
    fixed = sum(padded(Q.F32, t.shape[0]) for t in tensors if t.name not in costs)
    best = float("inf")
    for combo in itertools.product(LADDER, repeat=len(free)):
        size = fixed + sum(padded(q, n[t.name]) for t, q in zip(free, combo, strict=True))
        if size <= budget:
            best = min(best, sum(costs[t.name][q] for t, q in zip(free, combo, strict=True)))
    return best


def test_a_wide_embedding_does_not_leave_the_budget_between_its_steps_unspent() -> None:
    # An embedding as large as the blocks together: each of its steps jumps over whole budgets,
    # and the relaxation alone planned as if the budget between two jumps were not there.
    tensors = [T("token_embd.weight", (256, 4096)), *model(1)[1:]]
    costs = costs_for(tensors, {"token_embd.weight": 30.0})
    stock = stock_of(tensors, Q.Q2_K)
    low, high = budget_of(tensors, stock), budget_of(tensors, stock_of(tensors, Q.Q8_0))
    for step in range(21):
        budget = low + (high - low) * step // 20
        p = plan_mix(tensors, stock, costs, MixTarget("Q2_K", budget), quiet=True)
        assert padded_bytes(p) <= budget
        assert predicted_cost(p, costs) <= 1.02 * _optimum(tensors, costs, budget)


def test_the_runner_up_puts_a_wide_tensor_at_another_type() -> None:
    from edgekit.quant.mixplan import plan_mixes

    tensors = [T("token_embd.weight", (256, 4096)), *model(2)[1:]]
    costs = costs_for(tensors, {"token_embd.weight": 30.0})
    stock = stock_of(tensors, Q.Q4_K)
    target = MixTarget("Q4_K_M", budget_of(tensors, stock))
    best, second = plan_mixes(tensors, stock, costs, target)
    assert best.types == plan_mix(tensors, stock, costs, target).types
    assert best.types != second.types
    assert predicted_cost(best, costs) <= predicted_cost(second, costs)
    assert padded_bytes(second) <= target.budget_bytes
    # many small tensors and none wide: one plan, nothing to pin at another type
    small = model(32)[1:]
    stock = stock_of(small, Q.Q4_K)
    target = MixTarget("Q4_K_M", budget_of(small, stock))
    assert len(plan_mixes(small, stock, costs_for(small, {}), target)) == 1
