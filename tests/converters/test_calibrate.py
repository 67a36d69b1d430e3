"""Calibration on a tiny random HF llama with a planted, token-specific spike in one block:
the calibrator finds it, the planner keeps it, and the written GGUF holds it at high precision."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from gguf import GGMLQuantizationType

from edgekit.converters.gguf import plan_for, write_planned
from edgekit.gguf.reader import read_header
from edgekit.quant.planner import Spike
from edgekit.texts.calibration import CALIBRATION_TEXT
from tests.fixtures.convert import N_LAYERS  # the blocks of tiny_base_gguf
from tests.fixtures.tiny_tokenizers import train_bpe

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

SPIKY_BLOCK = 1
pytestmark = pytest.mark.timeout(300)


def build_tokenizer(folder: Path) -> Any:
    """Whole words of the calibration text, so the spike can be planted on one token."""
    tok = train_bpe(
        "whitespace",
        CALIBRATION_TEXT.splitlines(),
        vocab_size=400,
        specials=("<unk>", "<s>", "</s>"),
    )
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )
    fast.save_pretrained(folder)
    return fast


def plant_spike(model: Any, token_id: int, block: int, strength: float = 6.0) -> None:
    """One MLP channel of `block` that fires only on `token_id`: its down_proj input spikes."""
    embed = model.model.embed_tokens.weight
    direction = embed[token_id] / embed[token_id].norm()
    mlp = model.model.layers[block].mlp
    with torch.no_grad():
        mlp.gate_proj.weight[0] = strength * direction * direction.numel() ** 0.5
        mlp.up_proj.weight[0] = strength * direction * direction.numel() ** 0.5


@pytest.fixture(scope="module")
def tiny_hf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("hf-llama")
    tok = build_tokenizer(folder)
    cfg = transformers.LlamaConfig(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=N_LAYERS,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
    )
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(cfg)
    with torch.no_grad():
        model.model.embed_tokens.weight.normal_(0.0, 1.0)  # the residual stream ~ the embedding
    plant_spike(model, tok.convert_tokens_to_ids("the"), SPIKY_BLOCK)
    model.save_pretrained(folder, safe_serialization=True)
    return folder


def test_calibration_finds_the_planted_spike_and_it_is_kept(
    tiny_hf: Path, tiny_base_gguf: Path, tmp_path: Path
) -> None:
    from edgekit.converters.calibrate import calibrate, load_for_calibration

    profile = calibrate(load_for_calibration(tiny_hf), [CALIBRATION_TEXT], seq_len=64)
    top = profile.ranked()[0]
    assert top.tensor == f"blk.{SPIKY_BLOCK}.ffn_down.weight"
    others = [x.input.score for x in profile.layers if x is not top]
    assert top.input.score > 5 * max(others)
    assert profile.n_tokens > 100 and profile.architecture == "llama"

    base = tiny_base_gguf  # rows of 256: K-quants apply
    p = plan_for(base, profile, GGMLQuantizationType.Q4_K, Spike(threshold=2 * max(others)))
    assert [d.tensor for d in p.kept] == [top.tensor]
    out = write_planned(base, tmp_path / "out.gguf", p, profile).path
    types = {t.name: t.ggml_type for t in read_header(out).tensors}
    assert types[top.tensor] == GGMLQuantizationType.Q8_0
    assert types["blk.0.ffn_down.weight"] == GGMLQuantizationType.Q4_K
