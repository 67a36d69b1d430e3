"""One convert path through the real default model: F32 base, spike plan, write, eval."""

from __future__ import annotations

from pathlib import Path

import pytest
from gguf import GGMLQuantizationType

from edgekit.backends.llama_cpp.eval import Windows, evaluate
from edgekit.backends.runner import resolve_model
from edgekit.converters.gguf import base_gguf, plan_for, read_plan_metadata, write_planned
from edgekit.gguf.reader import read_header
from edgekit.quant.planner import Spike
from edgekit.quant.spikes import LayerSpikes, SpikeProfile, Stat
from edgekit.texts.evaluation import load_eval_text

pytestmark = [pytest.mark.real_model, pytest.mark.timeout(900)]
Q = GGMLQuantizationType


def gemma_like_profile() -> SpikeProfile:
    """Scores shaped like the ones calibration measures on this model (block 0 stands out)."""
    layers = tuple(
        LayerSpikes(
            f"model.layers.{b}.mlp.down_proj",
            f"blk.{b}.ffn_down.weight",
            b,
            Stat(150.0 if b == 0 else 10.0, 13.0 if b == 0 else 3.5),
            Stat(5.0, 2.0),
        )
        for b in range(18)
    )
    return SpikeProfile("gemma-3-270m", "gemma3", 900, "sha256:fixture", layers)


def test_spike_aware_convert_of_the_default_model(tmp_path: Path) -> None:
    source = resolve_model(None)
    base = base_gguf(source)
    assert all(t.ggml_type in (Q.F32, Q.F16) for t in read_header(base).tensors)
    profile = gemma_like_profile()
    p = plan_for(base, profile, Q.Q4_K, Spike())
    assert [d.tensor for d in p.kept] == ["blk.0.ffn_down.weight"]
    out = write_planned(base, tmp_path / "spike.gguf", p, profile).path
    types = {t.name: t.ggml_type for t in read_header(out).tensors}
    assert types["blk.0.ffn_down.weight"] == Q.Q8_0
    assert types["blk.0.attn_q.weight"] == Q.Q5_0  # rows of 640: llama.cpp's Q4_K fallback
    assert read_plan_metadata(out)["kept_tensors"] == ["blk.0.ffn_down.weight"]
    ref, (row,) = evaluate(base, [out], load_eval_text().text, Windows(max_windows=1), threads=1)
    assert row.kld < 0.2 and row.top1 > 0.8
    assert abs(row.ppl - ref.ppl) / ref.ppl < 0.2
