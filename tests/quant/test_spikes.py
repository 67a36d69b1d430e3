"""Spike profiles: the score, BOS exclusion left to the caller, JSON round trip, name mapping."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgekit.errors import CalibrationError, UnsupportedArchitectureError
from edgekit.quant.spike_plot import spike_table
from edgekit.quant.spikes import (
    Stat,
    block_of,
    calibration_hash,
    gguf_tensor_name,
    load_profile,
    summarize,
)
from tests.fixtures.convert import synthetic_profile


def test_score_is_max_over_median_of_per_token_maxima() -> None:
    s = summarize(np.array([1.0, 2.0, 3.0, 60.0]))
    assert (s.max, s.median) == (60.0, 2.5)
    assert s.score == pytest.approx(24.0)


def test_a_dead_layer_scores_zero_instead_of_dividing_by_zero() -> None:
    assert Stat(max=0.0, median=0.0).score == 0.0


def test_no_tokens_is_a_calibration_error() -> None:
    with pytest.raises(CalibrationError, match="no calibration tokens"):
        summarize(np.array([]))


def test_profile_json_round_trip(tmp_path: Path) -> None:
    profile = synthetic_profile()
    loaded = load_profile(profile.save(tmp_path / "s.json"))
    assert loaded == profile
    assert loaded.ranked()[0].tensor == "blk.1.ffn_down.weight"
    assert loaded.scores()["blk.1.ffn_down.weight"] == pytest.approx(400 / 1.01)


@pytest.mark.parametrize("content", ["{not json", "[]", '{"layers": []}'])
def test_bad_profile_files_are_one_clear_error(tmp_path: Path, content: str) -> None:
    p = tmp_path / "bad.json"
    p.write_text(content)
    with pytest.raises(CalibrationError):
        load_profile(p)


def test_missing_profile_is_a_calibration_error(tmp_path: Path) -> None:
    with pytest.raises(CalibrationError, match="not found"):
        load_profile(tmp_path / "nope.json")


@pytest.mark.parametrize(
    ("module", "arch", "expected"),
    [
        ("model.layers.0.mlp.down_proj", "gemma3", "blk.0.ffn_down.weight"),
        ("model.layers.2.self_attn.q_proj", "llama", "blk.2.attn_q.weight"),
        ("model.layers.1.self_attn.o_proj", "qwen2", "blk.1.attn_output.weight"),
        ("lm_head", "llama", "output.weight"),
        ("model.layers.0.not_a_layer", "llama", None),
    ],
)
def test_hf_modules_map_through_gguf_py(module: str, arch: str, expected: str | None) -> None:
    assert gguf_tensor_name(module, arch, 4) == expected


def test_unknown_architecture_for_mapping() -> None:
    with pytest.raises(UnsupportedArchitectureError):
        gguf_tensor_name("model.layers.0.mlp.down_proj", "nonesuch", 4)


def test_helpers() -> None:
    assert block_of("blk.12.ffn_down.weight") == 12 and block_of("output.weight") is None
    assert calibration_hash(["a"]) != calibration_hash(["b"])
    assert calibration_hash(["a", "b"]).startswith("sha256:")


def test_terminal_rendering_marks_kept_layers() -> None:
    from rich.console import Console

    console = Console(record=True, width=160)
    console.print(spike_table(synthetic_profile(), {"blk.1.ffn_down.weight"}))
    text = console.export_text()
    assert "ffn_down" in text and "400.0" in text and "*" in text
