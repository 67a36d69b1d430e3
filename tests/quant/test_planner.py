"""The planner is a pure function: every rule, recipe, fallback and budget, without llama.cpp."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

from edgekit.errors import PlanError
from edgekit.quant.planner import (
    RandomLayers,
    Spike,
    TargetBpw,
    compatible,
    nbytes,
    plan,
)
from edgekit.quant.types import FALLBACK

Q = GGMLQuantizationType


@dataclass(frozen=True)
class T:
    name: str
    shape: tuple[int, ...]
    ggml_type: GGMLQuantizationType = Q.F32


def model(n_blocks: int = 4, row: int = 256, tied: bool = False) -> list[T]:
    out = [T("token_embd.weight", (row, 1000)), T("output_norm.weight", (row,))]
    if not tied:
        out.append(T("output.weight", (row, 1000)))
    for b in range(n_blocks):
        out += [
            T(f"blk.{b}.attn_norm.weight", (row,)),
            T(f"blk.{b}.attn_q.weight", (row, row)),
            T(f"blk.{b}.ffn_up.weight", (row, 2 * row)),
            T(f"blk.{b}.ffn_down.weight", (2 * row, row)),
        ]
    return out


def down_scores(values: list[float]) -> dict[str, float]:
    return {f"blk.{b}.ffn_down.weight": v for b, v in enumerate(values)}


SCORES = down_scores([100.0, 3.0, 2.0, 30.0])


def test_one_d_tensors_stay_f32_whatever_the_recipe() -> None:
    p = plan(model(), SCORES, Q.Q4_K, Spike(threshold=0.0))
    for d in p.decisions:
        if d.tensor.endswith("norm.weight"):
            assert (d.type, d.rule) == (Q.F32, "1-D")


def test_output_head_gets_output_type_and_token_embd_the_base() -> None:
    types = plan(model(), {}, Q.Q4_K, Spike()).types
    assert types["output.weight"] == Q.Q6_K
    assert types["token_embd.weight"] == Q.Q4_K


def test_tied_embedding_is_treated_as_the_output_head() -> None:
    p = plan(model(tied=True), {}, Q.Q4_K, Spike(), output_type=Q.Q8_0)
    d = next(d for d in p.decisions if d.tensor == "token_embd.weight")
    assert (d.type, d.rule) == (Q.Q8_0, "output")


def test_spike_threshold_keeps_exactly_the_layers_at_or_above_it() -> None:
    p = plan(model(), SCORES, Q.Q4_K, Spike(threshold=30.0))
    assert [d.tensor for d in p.kept] == ["blk.0.ffn_down.weight", "blk.3.ffn_down.weight"]
    assert all(d.type == Q.Q8_0 for d in p.kept)
    assert p.types["blk.1.ffn_down.weight"] == Q.Q4_K


def test_spike_relative_default_is_an_outlier_rule() -> None:
    # median score 16.5 -> 3x = 49.5: only the 100 stands out.
    assert [d.tensor for d in plan(model(), SCORES, Q.Q4_K, Spike()).kept] == [
        "blk.0.ffn_down.weight"
    ]


def test_spike_top_k_takes_the_highest_scores_first() -> None:
    p = plan(model(), SCORES, Q.Q4_K, Spike(threshold=0.0, top_k=1, high_type=Q.F16))
    assert [(d.tensor, d.type) for d in p.kept] == [("blk.0.ffn_down.weight", Q.F16)]


def test_ties_are_broken_by_name_so_plans_are_deterministic() -> None:
    scores = down_scores([5.0, 5.0, 5.0, 5.0])
    p = plan(model(), scores, Q.Q4_K, Spike(threshold=0.0, top_k=2))
    assert [d.tensor for d in p.kept] == ["blk.0.ffn_down.weight", "blk.1.ffn_down.weight"]


def test_unscored_tensors_are_never_kept() -> None:
    p = plan(model(), SCORES, Q.Q4_K, Spike(threshold=0.0))
    assert {d.tensor for d in p.kept} == set(SCORES)


def test_scores_for_unknown_tensors_are_ignored() -> None:
    p = plan(model(), {"blk.99.ffn_down.weight": 1e6}, Q.Q4_K, Spike(threshold=0.0))
    assert p.kept == []


def test_fallback_mirrors_llama_cpp_for_rows_the_block_does_not_divide() -> None:
    p = plan(model(row=640), {}, Q.Q4_K, Spike())
    d = next(d for d in p.decisions if d.tensor == "blk.0.attn_q.weight")
    assert d.type == Q.Q5_0 and "fallback" in d.note
    assert p.types["blk.0.ffn_down.weight"] == Q.Q4_K  # rows of 1280 = 5 x 256
    assert p.types["output.weight"] == Q.Q8_0  # Q6_K falls back


@pytest.mark.parametrize("t", list(FALLBACK))
def test_every_fallback_is_compatible_or_f16(t: GGMLQuantizationType) -> None:
    real, _ = compatible(t, 96)
    assert 96 % GGML_QUANT_SIZES[real][0] == 0


def test_incompatible_type_without_fallback_is_a_plan_error() -> None:
    with pytest.raises(PlanError, match="divisible"):
        compatible(Q.Q8_0, 100)


def test_sizes_come_from_ggml_quant_sizes() -> None:
    p = plan(model(), SCORES, Q.Q8_0, Spike(threshold=1e9))
    expected = sum(nbytes(d.type, d.n_elements) for d in p.decisions)
    assert p.n_bytes == expected
    assert p.bpw == pytest.approx(8 * expected / p.n_params)
    assert nbytes(Q.Q8_0, 64) == 68 and nbytes(Q.F32, 3) == 12


def test_target_bpw_spends_the_budget_in_score_order() -> None:
    base = plan(model(), SCORES, Q.Q4_K, Spike(threshold=1e9))
    one = plan(model(), SCORES, Q.Q4_K, Spike(threshold=0.0, top_k=1))
    p = plan(model(), SCORES, Q.Q4_K, TargetBpw(bpw=one.bpw + 1e-9))
    assert [d.tensor for d in p.kept] == ["blk.0.ffn_down.weight"]
    assert base.bpw < p.bpw <= one.bpw + 1e-9
    everything = plan(model(), SCORES, Q.Q4_K, TargetBpw(bpw=32.0))
    assert len(everything.kept) == len(SCORES)


def test_target_bpw_below_the_base_is_a_plan_error() -> None:
    with pytest.raises(PlanError, match="bits per weight"):
        plan(model(), SCORES, Q.Q4_K, TargetBpw(bpw=1.0))


def test_random_recipe_is_seeded_and_draws_from_scored_layers() -> None:
    a = plan(model(8), down_scores([1.0] * 8), Q.Q4_K, RandomLayers(seed=1, k=3))
    b = plan(model(8), down_scores([1.0] * 8), Q.Q4_K, RandomLayers(seed=1, k=3))
    c = plan(model(8), down_scores([1.0] * 8), Q.Q4_K, RandomLayers(seed=2, k=3))
    assert [d.tensor for d in a.kept] == [d.tensor for d in b.kept]
    assert len(a.kept) == 3 and {d.tensor for d in a.kept} != {d.tensor for d in c.kept}


def test_random_with_a_budget_matches_the_spike_budget() -> None:
    spike = plan(model(), SCORES, Q.Q4_K, TargetBpw(bpw=6.0))
    rand = plan(model(), SCORES, Q.Q4_K, RandomLayers(seed=0, bpw=spike.bpw))
    assert rand.n_bytes <= spike.n_bytes
    assert len(rand.kept) == len(spike.kept)  # same-shape layers: same count fits


def test_random_needs_k_or_budget() -> None:
    with pytest.raises(PlanError):
        plan(model(), SCORES, Q.Q4_K, RandomLayers(seed=0))


def test_base_mix_replaces_the_uniform_base_per_tensor() -> None:
    mix = {"blk.1.ffn_down.weight": Q.Q6_K, "output.weight": Q.Q8_0}
    types = plan(model(), SCORES, Q.Q4_K, Spike(threshold=50.0), base_mix=mix).types
    assert types["blk.1.ffn_down.weight"] == Q.Q6_K
    assert types["output.weight"] == Q.Q8_0
    assert types["blk.0.ffn_down.weight"] == Q.Q8_0  # kept wins over the mix


def test_never_quantized_tensors_keep_their_base_file_type() -> None:
    tensors = [*model(1), T("position_embd.weight", (256, 64), Q.F16)]
    d = next(d for d in plan(tensors, {}, Q.Q4_K, Spike()).decisions if d.rule == "copy")
    assert (d.tensor, d.type) == ("position_embd.weight", Q.F16)


def test_plan_serialises_and_logs_one_line_per_tensor(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="edgekit.quant.planner")
    p = plan(model(), SCORES, Q.Q4_K, Spike(threshold=30.0))
    assert len(caplog.records) == len(p.decisions) == len(p.lines())
    doc = p.to_dict()
    assert doc["recipe"] == "spike" and doc["params"]["high_type"] == "Q8_0"
    assert len(doc["tensors"]) == len(p.decisions)
    assert (
        "score=100.0" in p.lines()[next(i for i, d in enumerate(p.decisions) if d.rule == "kept")]
    )
