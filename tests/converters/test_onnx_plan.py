"""Measured ONNX plans and their random control (pure), and the GGUF tokenizer repair.

The probes themselves run on a real tiny graph in tests/converters/test_onnx_int4.py; here the
arithmetic that turns probe KLDs into node costs, and the two byte-budget planners, are checked on
shapes alone, and match_gguf_tokenizer on a real GGUF header and a real `tokenizers` tokenizer."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import gguf
import pytest

from edgekit.backends.onnx.nbits import FusedNode
from edgekit.backends.onnx.sensitivity import Probe, distribute, make_probes
from edgekit.converters.hf_vocab import GPT2_REGEX
from edgekit.errors import PlanError
from edgekit.quant.mixplan import padded
from edgekit.quant.onnx_plan import (
    budget_for_bpw,
    kquant_mixed_budget,
    measured_plan,
    random_plan,
)
from edgekit.quant.types import NBITS_4, NBITS_8
from tests.fixtures.tiny_tokenizers import train_bpe


def _node(bid: int | None, module: str, k: int = 64, n: int = 64) -> FusedNode:
    if bid is None:
        return FusedNode("/lm_head/MatMul", "MatMul", "token_embd.weight", (), "w", (k, n))
    name = f"blk.{bid}.{module.split('/')[-1]}.weight"
    return FusedNode(f"/model/layers.{bid}/{module}/MatMul", "MatMul", name, (), "w", (k, n))


NODES = [
    *(_node(b, m) for b in range(3) for m in ("attn/qkv_proj", "mlp/down_proj")),
    _node(None, "", 64, 512),
]


def test_probes_cover_kinds_blocks_and_the_priors_top_nodes() -> None:
    scores = {n.name: float(i) for i, n in enumerate(NODES)}
    labels = [p.label for p in make_probes(NODES, scores, alone=2)]
    assert labels == [
        "kind:attn/qkv_proj",
        "kind:head",
        "kind:mlp/down_proj",
        "block:0",
        "block:1",
        "block:2",
        # the head is its own kind (probed alone already); the next two scores are probed alone
        "alone:blk.2.down_proj.weight",
        "alone:blk.2.qkv_proj.weight",
    ]


def test_costs_split_a_kind_by_block_damage_and_keep_measured_nodes() -> None:
    probes = [
        Probe("kind:attn/qkv_proj", frozenset(), 0.3),
        Probe("kind:mlp/down_proj", frozenset(), 0.6),
        Probe("kind:head", frozenset(), 0.5),
        Probe("block:0", frozenset(), 0.1),
        Probe("block:1", frozenset(), 0.1),
        Probe("block:2", frozenset(), 0.4),
        Probe("alone:blk.2.down_proj.weight", frozenset(), 0.45),
    ]
    costs = distribute(NODES, probes)
    qkv = [costs[f"blk.{b}.qkv_proj.weight"] for b in range(3)]
    assert sum(qkv) == pytest.approx(0.3)
    assert qkv == pytest.approx([0.05, 0.05, 0.2])  # in proportion to the block probes
    assert costs["blk.2.down_proj.weight"] == 0.45  # measured alone
    # What down_proj lost beyond the node probed alone goes to the other two blocks.
    assert costs["blk.0.down_proj.weight"] + costs["blk.1.down_proj.weight"] == pytest.approx(0.15)
    assert costs["token_embd.weight"] == 0.5


def test_measured_and_random_plans_spend_the_same_budget_on_the_same_candidates() -> None:
    costs = {n.name: 0.01 for n in NODES} | {"blk.1.down_proj.weight": 1.0}
    budget = budget_for_bpw(NODES, 8.0)
    ours = measured_plan(NODES, costs, budget)
    assert {d.tensor for d in ours.kept} >= {"blk.1.down_proj.weight"}
    assert {d.type for d in ours.decisions} == {NBITS_4, NBITS_8}
    picks = set()
    for seed in range(20):
        rand = random_plan(NODES, budget, seed)
        assert sum(padded(d.type, d.n_elements) for d in rand.decisions) <= budget
        picks |= {d.tensor for d in rand.kept}
    assert sum(padded(d.type, d.n_elements) for d in ours.decisions) <= budget
    assert "token_embd.weight" in picks  # the head is a candidate of the control too
    with pytest.raises(PlanError, match="4 bits"):
        measured_plan(NODES, costs, budget_for_bpw(NODES, 4.0))


def test_kquant_mixed_budget_is_the_builders_layout() -> None:
    """24 blocks (Qwen2-0.5B's count): the builder's k_quant_mixed puts 8 bits on qkv and down of
    blocks 0-2, 21-23 and every third between (5, 8, ..., 20), and on the head."""
    more = {0, 1, 2, 5, 8, 11, 14, 17, 20, 21, 22, 23}
    nodes = [
        FusedNode("", "MatMul", f"blk.{b}.{m}.weight", (), "w", (64, 64))
        for b in range(24)
        for m in ("attn_qkv", "attn_output", "ffn_gate", "ffn_down")
    ]
    head = FusedNode("", "MatMul", "output.weight", (), "w", (64, 512))
    embed = FusedNode("", "Gather", "token_embd.weight", (), "w", (64, 512))
    four, eight = padded(NBITS_4, 64 * 64), padded(NBITS_8, 64 * 64)
    body = 24 * 4 * four + 2 * len(more) * (eight - four)
    untied = body + padded(NBITS_8, 64 * 512) + padded(NBITS_4, 64 * 512)
    assert kquant_mixed_budget([*nodes, head, embed]) == untied
    tied = replace(head, name="token_embd.weight")  # the head is the embedding: 8 bits
    assert kquant_mixed_budget([*nodes, tied]) == body + padded(NBITS_8, 64 * 512)


def _gguf(path: Path, add_bos: bool, pre: str) -> Path:
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_block_count(1)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(pre)
    w.add_bos_token_id(0)
    w.add_eos_token_id(1)
    w.add_add_bos_token(add_bos)
    import numpy as np

    w.add_tensor("token_embd.weight", np.zeros((4, 32), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def _tokenizer(folder: Path) -> None:
    """A byte-level BPE saved the way transformers' GGUF conversion saves SmolLM2's."""
    texts = ["the year 2024 and 1999 were years  0 1"] * 50
    specials = ("<|im_start|>", "<|im_end|>")
    tok = train_bpe("gpt2", texts, vocab_size=300, specials=specials, bos="<|im_start|>")
    folder.mkdir()
    tok.save(str(folder / "tokenizer.json"))
    config = {"bos_token": "<|im_start|>", "eos_token": "<|im_start|>", "add_bos_token": True}
    (folder / "tokenizer_config.json").write_text(json.dumps(config))


def test_tokenizer_follows_the_ggufs_bos_digits_and_eos(tmp_path: Path) -> None:
    from tokenizers import Tokenizer

    from edgekit.converters.onnx_gguf_tokenizer import match_gguf_tokenizer

    _tokenizer(tmp_path / "hf")
    src = _gguf(tmp_path / "m.gguf", add_bos=False, pre="smollm")
    assert match_gguf_tokenizer(tmp_path / "hf", src)
    tok = Tokenizer.from_file(str(tmp_path / "hf" / "tokenizer.json"))
    enc = tok.encode("year 2024")
    assert 0 not in enc.ids  # no BOS: the GGUF says add_bos_token=False
    assert enc.tokens[-4:] == ["2", "0", "2", "4"]  # llama.cpp's smollm pre-tokenizer
    config = json.loads((tmp_path / "hf" / "tokenizer_config.json").read_text())
    assert (config["eos_token"], config["add_bos_token"]) == ("<|im_end|>", False)
    assert not match_gguf_tokenizer(tmp_path / "hf", src)  # idempotent: cached folders repaired

    _tokenizer(tmp_path / "keep")
    before = Tokenizer.from_file(str(tmp_path / "keep" / "tokenizer.json"))
    # A GGUF that adds BOS and uses the plain GPT-2 split keeps both: the split is only spelled
    # out as a Split step (which onnxruntime-genai reads) and EOS renamed.
    match_gguf_tokenizer(tmp_path / "keep", _gguf(tmp_path / "b.gguf", True, "gpt2"))
    doc = json.loads((tmp_path / "keep" / "tokenizer.json").read_text())
    steps = doc["pre_tokenizer"]["pretokenizers"]
    assert [s.get("pattern", {}).get("Regex") for s in steps] == [GPT2_REGEX, None]
    assert doc["decoder"]["type"] == "ByteLevel"  # not SentencePiece's "▁" replacement
    after = Tokenizer.from_file(str(tmp_path / "keep" / "tokenizer.json"))
    text = "the year 2024 and  1999\n\n  0"
    assert after.encode(text).ids == before.encode(text).ids
    assert after.encode("year").ids[0] == 0
