"""Scoring on llama.cpp: many sequences packed into one decode as a prefix tree give what one
sequence at a time gives, on a context of the scorer's own that sees the runtime's adapters."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgekit.backends.base import SamplingParams, logprobs_row_by_row
from edgekit.backends.llama_cpp.packing import Pack, PackLimits
from edgekit.backends.llama_cpp.scoring import SCORE_ROWS
from edgekit.backends.runner import open_runtime, plan_run


def test_a_shared_prefix_is_one_node_and_its_row_serves_every_sequence() -> None:
    pack = Pack(PackLimits(tokens=100, rows=100, seqs=8))
    pack.try_add(0, [1, 5, 6, 7], 2)  # rows at positions 2 and 3... up to len-2: 2
    assert pack.cost([1, 5, 6, 9], 2) == (1, 0)  # one new node; row 2 is already there
    pack.try_add(1, [1, 5, 6, 9], 2)
    pack.try_add(2, [1, 5, 8], 1)
    assert pack.token == [1, 5, 6, 7, 9, 8]
    assert pack.seqs[:2] == [[0, 1, 2], [0, 1, 2]] and pack.seqs[2] == [0, 1]
    assert pack.output == [False, True, True, False, False, False]
    assert pack.targets(0) == ([2], [7]) and pack.targets(1) == ([2], [9])
    assert pack.targets(2) == ([1], [8])
    # Every node comes after its parent, so llama.cpp sees each sequence's positions in order.
    for path in pack.paths:
        assert path == sorted(path)


def test_a_pack_refuses_what_passes_any_limit() -> None:
    pack = Pack(PackLimits(tokens=6, rows=3, seqs=2))
    pack.try_add(0, [1, 2, 3, 4], 1)  # 4 nodes, rows at 1 and 2
    assert not pack.fits([1, 2, 5, 6, 7], 1)  # 3 new nodes: 7 > 6
    assert not pack.fits([1, 9, 8], 0)  # rows 0 (shared) 1 (new)... 2 new rows: 4 > 3
    assert pack.fits([1, 2, 3, 5], 2)
    pack.try_add(1, [1, 2, 3, 5], 2)
    assert not pack.fits([1, 2], 0)  # a third sequence


@pytest.fixture(scope="module")
def runtime(tiny4_model: Path):  # type: ignore[no-untyped-def]
    rt = open_runtime(plan_run(tiny4_model, "cpu", 256, threads=1))
    yield rt
    rt.close()


def _spans(source) -> list[tuple[list[int], int]]:  # type: ignore[no-untyped-def]
    prompts = ["the river runs", "a city of stone and", "the sea"]
    answers = [" north", " the old bridge", " and the city by the sea"]
    spans = []
    for p in prompts:
        base = len(source.tokenize(p))
        spans += [(source.tokenize(p + a), base - 1) for a in answers]
    long = source.tokenize(" ".join(["the river and the sea"] * 20))
    spans.append((long, 1))  # more rows than a pack holds: scored alone
    words = ["river"] * 3 + ["city"] * 30
    spans += [(source.tokenize(f"the {w} runs to the sea"), 1) for w in words]
    return spans


def test_packed_scores_are_those_of_one_sequence_at_a_time(runtime) -> None:  # type: ignore[no-untyped-def]
    source = runtime.logits()
    try:
        spans = _spans(source)
        assert len(spans[9][0]) - 2 > SCORE_ROWS
        assert sum(len(t) - 1 - f for t, f in spans) > 3 * SCORE_ROWS  # several packs
        packed = source.token_logprobs(spans)
        alone = []
        for span in spans:
            source.release()
            alone += logprobs_row_by_row(source, [span])
    finally:
        source.close()
    assert [len(p) for p in packed] == [len(t) - 1 - f for t, f in spans]
    # Batches of other sizes round differently (~2e-3 here); one sequence seeing another's
    # tokens would move a score as much as another prompt does, which is far more.
    for p, a in zip(packed, alone, strict=True):
        np.testing.assert_allclose(p, a, atol=1e-2)
    assert abs(packed[0][-1] - packed[3][-1]) > 0.1  # " north" after two different prompts
    assert all(np.all(p < 0) for p in packed)


def test_scoring_sees_the_control_vector_and_leaves_the_chat_cache_alone(runtime) -> None:  # type: ignore[no-untyped-def]
    early = runtime.logits()  # opened before the vector is set
    span = [(early.tokenize("the river runs to the sea"), 1)]
    base = early.token_logprobs(span)[0]
    first = runtime.generate(runtime.prompt_tokens("the river"), SamplingParams(max_tokens=4))
    held = runtime.llm.n_tokens
    matrix = np.zeros((runtime.info.block_count, runtime.info.n_embd), dtype=np.float32)
    matrix[1:] = 0.5
    try:
        runtime.set_control_vector(matrix)
        late = runtime.logits()  # opened after
        steered = early.token_logprobs(span)[0]
        np.testing.assert_allclose(late.token_logprobs(span)[0], steered, atol=1e-5)
        late.close()
    finally:
        runtime.set_control_vector(None)
    assert np.abs(steered - base).max() > 1e-3
    np.testing.assert_allclose(early.token_logprobs(span)[0], base, atol=1e-5)
    early.close()
    assert first.text and held > 0


def test_hidden_states_read_together_are_those_read_one_at_a_time(runtime) -> None:  # type: ignore[no-untyped-def]
    states = runtime.hidden_states(128, ("l_out", "attn_norm"))
    try:
        seqs = [runtime.tokenize(f"the {w} runs to the sea") for w in ("river", "city", "sea")]
        seqs += [runtime.tokenize(" ".join(["the river and the sea"] * 12))]  # alone: too long
        seqs *= 12  # several decodes
        together = states.read_many(seqs)
        alone = [states.read(t) for t in seqs]
    finally:
        states.close()
    assert together[0].keys() == {"l_out", "attn_norm"}
    # Rounding of other batch shapes (~2e-3 here) against what another context moves (>0.1).
    moved = np.abs(alone[0]["l_out"][2][-1] - alone[1]["l_out"][2][-1]).max()
    assert moved > 0.1
    for t, a in zip(together, alone, strict=True):
        for point, blocks in a.items():
            assert t[point].keys() == blocks.keys() and len(blocks) >= 3
            for block, x in blocks.items():
                np.testing.assert_allclose(t[point][block], x, atol=1e-2)
