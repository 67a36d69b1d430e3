"""The guard (edgekit/converters/guard.py) on a float-like source: a measured file ships only if it
beats llama.cpp's stock mix of the same size on calibration text; otherwise the stock mix's
own bytes are the output, and plan.json says so."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from gguf import GGMLQuantizationType

from edgekit.converters import guard
from edgekit.converters.measured import Workspace, measured_plans, target_for, write_guarded
from edgekit.gguf.reader import read_header
from edgekit.quant.mixplan import Costs, padded
from edgekit.quant.planner import Decision, Plan
from tests.fixtures.convert import FloatLikeSource

pytestmark = pytest.mark.timeout(600)
TEXT = " ".join(
    f"Bells rang over {n} quiet harbours while the {w} drifted in from the grey sea."
    for n, w in enumerate(["fog", "rain", "snow", "wind", "tide", "salt"] * 12)
)


@pytest.fixture(scope="module")
def ws(tiny_float_like: FloatLikeSource, tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    cache = tmp_path_factory.mktemp("guarded")
    return Workspace(tiny_float_like.float_like, TEXT, threads=2, cache=cache)


def smallest(p: Plan, measured_costs: Costs) -> Plan:
    """Every measured tensor at its fewest-bit option: a plan the stock mix must beat."""

    def low(d: Decision) -> Decision:
        options = measured_costs.get(d.tensor)
        if not options:
            return d
        q = min(options, key=lambda t: padded(t, d.n_elements))
        return Decision(d.tensor, q, "down", d.n_elements, d.score)

    return Plan(p.recipe, p.params, p.base_type, tuple(low(d) for d in p.decisions))


def with_types(p: Plan, types: dict[str, GGMLQuantizationType]) -> Plan:
    moved = tuple(replace(d, type=types.get(d.tensor, d.type)) for d in p.decisions)
    return Plan(p.recipe, p.params, p.base_type, moved)


def test_a_runner_up_is_measured_when_the_best_plan_loses(ws: Workspace, tmp_path: Path) -> None:
    target, stock = target_for(ws, "Q4_K_M", None)
    (p, *_), measured = measured_plans(ws, target, stock)
    bad, as_stock = smallest(p, measured.costs), with_types(p, stock)
    out = tmp_path / "second.gguf"
    verdict = write_guarded(ws, out, target, [bad, as_stock], measured, "test")
    # the stock types written by edgekit tie with llama.cpp's file: a tie keeps the measured one
    assert verdict is not None and verdict.plan == 2 and verdict.shipped == "measured"
    assert verdict.measured_kld == pytest.approx(verdict.stock_kld, rel=1e-3)
    assert {t.name: t.ggml_type for t in read_header(out).tensors} == as_stock.types
    assert json.loads(out.with_suffix(".plan.json").read_text())["guard"]["plan"] == 2


def test_a_worse_mix_is_replaced_by_the_stock_mix(ws: Workspace, tmp_path: Path) -> None:
    target, stock = target_for(ws, "Q4_K_M", None)
    (p, *_), measured = measured_plans(ws, target, stock)
    bad = smallest(p, measured.costs)
    out = tmp_path / "bad.gguf"
    verdict = write_guarded(ws, out, target, [bad], measured, "test")
    assert verdict is not None and verdict.shipped == "stock"
    assert verdict.measured_kld > verdict.stock_kld > 0
    assert out.read_bytes() == ws.quantized("Q4_K_M", pure=False).read_bytes()
    record = json.loads(out.with_suffix(".plan.json").read_text())
    assert record["guard"]["shipped"] == "stock"


def test_the_measured_mix_ships_only_when_better(ws: Workspace, tmp_path: Path) -> None:
    target, stock = target_for(ws, "Q3_K_M", None)
    (p, *_), measured = measured_plans(ws, target, stock)
    out = tmp_path / "m.gguf"
    verdict = write_guarded(ws, out, target, [p], measured, "test")
    assert verdict is not None
    stock_file = ws.quantized("Q3_K_M", pure=False)
    # The verdict is the files' own: scoring them again gives the same numbers.
    again = guard.judge(ws.base, out, stock_file, ws.text, "Q3_K_M", ws.threads)
    if verdict.shipped == "measured":
        assert {t.name: t.ggml_type for t in read_header(out).tensors} == p.types
        assert again.measured_kld == pytest.approx(verdict.measured_kld, rel=1e-6)
    else:
        assert out.read_bytes() == stock_file.read_bytes()
    assert again.stock_kld == pytest.approx(verdict.stock_kld, rel=1e-6)


def test_a_better_file_wins_and_a_tie_keeps_the_measured_mix(ws: Workspace) -> None:
    stock_file = ws.quantized("Q2_K", pure=False)
    better = ws.quantized("Q8_0", pure=True)
    won = guard.judge(ws.base, better, stock_file, ws.text, "Q2_K")
    assert won.shipped == "measured" and won.tokens > 200
    lost = guard.judge(ws.base, stock_file, better, ws.text, "Q2_K")
    assert lost.shipped == "stock" and lost.noise > 0
    tie = guard.judge(ws.base, stock_file, stock_file, ws.text, "Q2_K")
    assert tie.noise == 0 and tie.shipped == "measured"


def test_a_bits_per_weight_target_has_no_stock_mix_to_fall_back_on(
    ws: Workspace, tmp_path: Path
) -> None:
    target, stock = target_for(ws, None, 4.5)
    (p, *_), measured = measured_plans(ws, target, stock)
    assert write_guarded(ws, tmp_path / "b.gguf", target, [p], measured, "test") is None
    assert "guard" not in json.loads((tmp_path / "b.plan.json").read_text())


def test_files_scored_one_at_a_time_give_the_same_verdict(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    stock_file, other = ws.quantized("Q2_K", pure=False), ws.quantized("Q4_K_M", pure=False)
    monkeypatch.setattr(guard, "TOGETHER", 100.0)
    together = guard.judge(ws.base, other, stock_file, ws.text, "Q2_K")
    monkeypatch.setattr(guard, "TOGETHER", 0.0)  # each file beside the base alone
    apart = guard.judge(ws.base, other, stock_file, ws.text, "Q2_K")
    assert apart.tokens == together.tokens
    for field in ("measured_kld", "stock_kld", "noise"):
        assert getattr(apart, field) == pytest.approx(getattr(together, field), rel=1e-6)
