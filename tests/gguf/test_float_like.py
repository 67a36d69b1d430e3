"""The float-like source (edgekit/gguf/float_like.py): a quantized file expanded to F32 sits on its
types' grids, so each tensor's own type reproduces it exactly; the float-like copy is off every
grid by about what quantizing real floats costs, and still a model llama.cpp runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from gguf import GGMLQuantizationType

from edgekit.backends.llama_cpp import ggml_quant, tools
from edgekit.gguf.compose import float_rows
from edgekit.gguf.float_like import make_float_like
from edgekit.gguf.reader import read_header
from tests.fixtures.convert import FloatLikeSource

Q = GGMLQuantizationType
pytestmark = pytest.mark.timeout(300)


def rms(a: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(a, dtype=np.float64))))


@pytest.fixture
def sources(tiny_float_like: FloatLikeSource) -> tuple[Path, Path, Path]:
    return tiny_float_like.quantized, tiny_float_like.expanded, tiny_float_like.float_like


def test_no_type_reproduces_the_float_like_weights(sources: tuple[Path, ...]) -> None:
    src, exp, fl = (read_header(p) for p in sources)
    checked = 0
    for ts, te, tf in zip(src.tensors, exp.tensors, fl.tensors, strict=True):
        x, y = float_rows(exp, te), float_rows(fl, tf)
        if ts.ggml_type in (Q.F32, Q.F16):
            assert np.array_equal(x, y), ts.name  # norms are not quantized: copied
            continue
        q, row = ts.ggml_type, te.shape[0]
        on_grid = ggml_quant.dequantize(ggml_quant.quantize(x, q, None), q, row)
        off_grid = ggml_quant.dequantize(ggml_quant.quantize(y, q, None), q, row)
        moved = rms(y - x)
        # The expansion's privilege: its own type gives it back (all but a few rounding ties).
        assert rms(on_grid - x) < 0.05 * moved, ts.name
        assert moved > 0.002 * rms(x), ts.name
        # Re-quantizing at the source type errs about as much as the noise: like real floats.
        assert 0.5 * moved < rms(off_grid - y) < 2 * moved, ts.name
        checked += 1
    assert checked >= 10


def test_float_like_is_deterministic_and_runs(sources: tuple[Path, ...], tmp_path: Path) -> None:
    quantized, expanded, float_like = sources
    again = make_float_like(quantized, expanded, tmp_path / "again.gguf")
    assert again.read_bytes() == float_like.read_bytes()
    assert float_like.stat().st_size == expanded.stat().st_size
    tools.cli_smoke(float_like)
