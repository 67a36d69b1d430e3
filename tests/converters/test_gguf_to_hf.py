"""GGUF -> float checkpoint a tensor at a time gives exactly what transformers' own GGUF loading
gives (q/k permutation undone), as a sharded checkpoint from_pretrained loads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

import gguf

from edgekit.converters import gguf_to_hf
from edgekit.converters.gguf_to_hf import INDEX_FILE, write_float_checkpoint
from tests.fixtures.tiny_models import write_tiny_llama


def test_streamed_checkpoint_equals_transformers_gguf_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src = write_tiny_llama(
        tmp_path / "tiny.gguf", n_layers=2, n_embd=64, n_head=4, n_head_kv=2,
        weight_type=gguf.GGMLQuantizationType.Q8_0,
    )  # fmt: skip
    monkeypatch.setattr(gguf_to_hf, "CHUNK_BYTES", 200)  # every table dequantized in slices
    seen: list[tuple[int, int]] = []
    write_float_checkpoint(src, tmp_path / "hf", lambda d, t: seen.append((d, t)))
    assert (tmp_path / "hf" / INDEX_FILE).is_file() and seen[-1][0] == seen[-1][1]
    ours = AutoModelForCausalLM.from_pretrained(tmp_path / "hf", dtype=torch.float32)
    theirs = AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file=src.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path, gguf_file=src.name)  # type: ignore[no-untyped-call]
    tokenizer.save_pretrained(tmp_path / "theirs")
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        got_doc = json.loads((tmp_path / "hf" / name).read_text())
        assert got_doc == json.loads((tmp_path / "theirs" / name).read_text()), name
    want = theirs.state_dict()
    got = ours.state_dict()
    assert got.keys() == want.keys()
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"]
    for name, tensor in want.items():
        assert torch.equal(got[name], tensor), name
