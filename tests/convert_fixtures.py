"""Convert-test fixtures: tiny GGUFs whose rows fit K-quants, synthetic spike profiles."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgekit.spikes import LayerSpikes, SpikeProfile, Stat
from tests.tiny_models import write_tiny_llama

N_LAYERS = 3


def tiny_base(path: Path) -> Path:
    """An F32 llama GGUF with 256-wide rows (K-quants apply) and 3 blocks."""
    return write_tiny_llama(path, n_layers=N_LAYERS, n_embd=256, n_ff=512, n_head=4, n_head_kv=2)


def synthetic_profile(spiky_block: int = 1, n_layers: int = N_LAYERS) -> SpikeProfile:
    layers = []
    for b in range(n_layers):
        for proj, kind in (("mlp.down_proj", "ffn_down"), ("self_attn.q_proj", "attn_q")):
            spike = 400.0 if (b == spiky_block and kind == "ffn_down") else 4.0
            layers.append(
                LayerSpikes(
                    module=f"model.layers.{b}.{proj}",
                    tensor=f"blk.{b}.{kind}.weight",
                    block=b,
                    input=Stat(max=spike, median=1.0 + 0.01 * b),
                    output=Stat(max=2.0, median=1.0),
                )
            )
    return SpikeProfile("tiny", "llama", 100, "sha256:test", tuple(layers))


@pytest.fixture(scope="session")
def tiny_base_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_base(tmp_path_factory.mktemp("convert") / "tiny-base-f32.gguf")
