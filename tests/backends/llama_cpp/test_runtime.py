from __future__ import annotations

import sys
from pathlib import Path

import pytest

from edgekit.backends.base import SamplingParams, decode_rate
from edgekit.backends.llama_cpp import probe
from edgekit.backends.runner import open_runtime, plan_run
from edgekit.errors import BrokenBuildError, RuntimeBackendError


def test_chat_uses_llama_cpp_templates(tiny_model: Path) -> None:
    runtime = open_runtime(plan_run(tiny_model, "cpu", 256))
    try:
        text = runtime.format_chat([{"role": "user", "content": "hi there"}])
    finally:
        runtime.close()
    # No template in the file: llama.cpp's built-in chatml, ending with the assistant's turn.
    assert text == "<|im_start|>user\nhi there<|im_end|>\n<|im_start|>assistant\n"


def test_streamed_pieces_add_up_to_the_text(tiny_model: Path) -> None:
    runtime = open_runtime(plan_run(tiny_model, "cpu", 256))
    pieces: list[str] = []
    try:
        tokens = runtime.prompt_tokens("the music of the river")
        result = runtime.generate(tokens, SamplingParams(max_tokens=20, seed=5), pieces.append)
    finally:
        runtime.close()
    assert "".join(pieces) == result.text
    assert result.stats.generated_tokens == 20 and result.stats.stop_reason == "length"


def test_probe_passes_and_is_remembered(tiny_model: Path, isolated_cache: Path) -> None:
    probe.ensure_build_works(1, model=tiny_model)
    assert list((isolated_cache / "build-probe").glob("*.ok"))


def test_crashing_build_is_explained_not_a_segfault(tiny_model: Path, isolated_cache: Path) -> None:
    segfault = [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"]
    with pytest.raises(BrokenBuildError, match="SIGSEGV") as e:
        probe.ensure_build_works(1, command=segfault)
    assert e.value.hint and "GGML_NATIVE=OFF" in e.value.hint
    assert not (isolated_cache / "build-probe").exists()


def test_failing_build_reports_its_error(tiny_model: Path, isolated_cache: Path) -> None:
    failing = [sys.executable, "-c", "raise SystemExit('libggml.so: cannot open shared object')"]
    with pytest.raises(RuntimeBackendError, match="cannot open shared object"):
        probe.ensure_build_works(1, command=failing)


def test_decode_rate_ignores_the_first_token() -> None:
    assert decode_rate(11, first_token_at=1.0, last_token_at=2.0) == pytest.approx(10.0)
    assert decode_rate(1, first_token_at=1.0, last_token_at=1.0) == 0.0


def _generate(model: Path, prompt: str, params: SamplingParams, threads: int | None = 1) -> str:
    runtime = open_runtime(plan_run(model, "cpu", 256, threads=threads))
    try:
        return runtime.generate(runtime.prompt_tokens(prompt), params).text
    finally:
        runtime.close()


def test_an_explicit_thread_count_is_used(tiny_model: Path) -> None:
    runtime = open_runtime(plan_run(tiny_model, "cpu", 256, threads=1))
    try:
        stats = runtime.generate(runtime.prompt_tokens("a b"), SamplingParams(max_tokens=4)).stats
    finally:
        runtime.close()
    assert stats.threads == 1


def test_auto_threads_stay_within_the_profile(tiny_model: Path) -> None:
    plan = plan_run(tiny_model, "cpu", 256)
    runtime = open_runtime(plan)
    try:
        stats = runtime.generate(runtime.prompt_tokens("a b"), SamplingParams(max_tokens=4)).stats
    finally:
        runtime.close()
    assert plan.threads is None and 1 <= stats.threads <= plan.profile.threads


def test_sampling_semantics_follow_llama_cli(tiny_model: Path) -> None:
    greedy = SamplingParams(max_tokens=24, temperature=0.0)
    text = _generate(tiny_model, "the music of the river", greedy)
    assert text  # the tiny model always has something to say
    # top-k 1 leaves only the argmax, whatever the temperature: greedy again.
    top1 = SamplingParams(max_tokens=24, temperature=1.5, top_k=1, seed=3)
    assert _generate(tiny_model, "the music of the river", top1) == text
    # A seed fixes a sampled text; a hot, unfiltered draw leaves the greedy path.
    hot = SamplingParams(max_tokens=24, temperature=5.0, top_k=0, top_p=1.0, min_p=0.0, seed=7)
    first = _generate(tiny_model, "the music of the river", hot)
    assert _generate(tiny_model, "the music of the river", hot) == first
    assert first != text


def test_a_later_turn_reuses_the_cache_and_matches_a_fresh_run(tiny_model: Path) -> None:
    """Chat turns share a prefix: only the new tokens are evaluated, with the same result."""
    greedy = SamplingParams(max_tokens=12, temperature=0.0)
    runtime = open_runtime(plan_run(tiny_model, "cpu", 256, threads=1))
    try:
        first = runtime.generate(runtime.prompt_tokens("the river"), greedy)
        longer = runtime.prompt_tokens("the river" + first.text + " and the sea")
        second = runtime.generate(longer, greedy)
        held = [int(t) for t in runtime.llm.input_ids[: runtime.llm.n_tokens]]  # type: ignore[attr-defined]
    finally:
        runtime.close()
    assert second.stats.prompt_tokens == len(longer)
    assert held[: len(longer)] == longer  # the Llama object knows what the cache holds
    assert second.text == _generate(tiny_model, "the river" + first.text + " and the sea", greedy)


def test_generating_between_two_scores_changes_neither(tiny_model: Path) -> None:
    from edgekit.backends.llama_cpp.runtime import LlamaCppRuntime
    from edgekit.bias import LogProbScorer

    runtime = open_runtime(plan_run(tiny_model, "cpu", 256, threads=1))
    assert isinstance(runtime, LlamaCppRuntime)
    try:
        scorer = LogProbScorer(runtime.logits())
        before = scorer.text_logprob("the river", " runs").total
        runtime.generate(runtime.prompt_tokens("something else"), SamplingParams(max_tokens=6))
        after = scorer.text_logprob("the river", " runs").total
        scorer.close()
    finally:
        runtime.close()
    assert after == pytest.approx(before, abs=1e-4)
