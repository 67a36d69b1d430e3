"""The erasure adapter through the real llama.cpp back end on tiny models: written in llama.cpp's
LoRA format, loaded by llama.cpp, exact at scale 1, refused for another model."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import pytest

from edgekit.backends import Capability, backend_for
from edgekit.backends.base import AdapterRuntime, SamplingParams, ScoringRuntime
from edgekit.backends.runner import open_runtime, plan_run
from edgekit.bias.controller import write_erasure
from edgekit.bias.derive import derive
from edgekit.bias.erasure import Directions, ModelWeights, build_adapter, check_adapter
from edgekit.bias.logprobs import LogProbScorer
from edgekit.errors import AdapterFileError
from edgekit.gguf.reader import load_model_info
from tests.fixtures.tiny_models import write_tiny_llama

PROMPT = "the river and the city were"


@pytest.fixture(scope="module")
def tiny(tiny4_model: Path) -> Path:
    return tiny4_model


@pytest.fixture(scope="module")
def runtime(tiny: Path) -> Iterator[Any]:
    rt = open_runtime(plan_run(tiny, "cpu", 256))
    yield rt
    rt.close()


@pytest.fixture(scope="module")
def directions(runtime: Any) -> Directions:
    """Derived once through the real runtime (seconds per derivation on a busy machine): the
    tests below differ in what they write from it, not in how it was found."""
    return derive(runtime, rank=3)


@pytest.fixture(scope="module")
def adapter(directions: Directions, tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("adapter") / "erase.gguf"
    alphas = dict.fromkeys(directions.blocks, 1.0)
    return write_erasure(path, ModelWeights(tiny), directions, alphas, {"scale": 1.0})


def _logits(runtime: Any, text: str) -> np.ndarray:
    source = runtime.logits()
    try:
        tokens = source.tokenize(text)
        return np.array(source.logits_from(tokens, 0))
    finally:
        source.close()


def test_llama_cpp_runtime_has_the_score_and_adapter_capabilities(runtime: Any, tiny: Path) -> None:
    assert Capability.SCORE in backend_for(tiny, Capability.SCORE).capabilities
    assert isinstance(runtime, ScoringRuntime) and isinstance(runtime, AdapterRuntime)
    scorer = LogProbScorer(runtime.logits())
    span = scorer.text_logprob("the river", " and the city")
    assert span.n_tokens >= 2 and span.total < 0
    scorer.close()


def test_adapter_is_in_llama_cpp_lora_format(adapter: Path, tiny: Path) -> None:
    reader = gguf.GGUFReader(str(adapter))
    fields = {k: f.contents() for k, f in reader.fields.items() if not k.startswith("GGUF.")}
    assert fields[gguf.Keys.General.TYPE] == gguf.GGUFType.ADAPTER
    assert fields[gguf.Keys.Adapter.TYPE] == "lora"
    assert fields[gguf.Keys.General.ARCHITECTURE] == "llama"
    names = {t.name for t in reader.tensors}
    # Every block's attention output matrix, and only it: queries, keys, values, the
    # feed-forward part and the embedding keep their weights.
    assert names == {f"blk.{b}.attn_output.weight.lora_{ab}" for b in range(4) for ab in "ab"}
    meta = check_adapter(adapter, load_model_info(tiny))
    assert meta["scale"] == 1.0 and meta["alphas"]["0"] == 1.0


def test_scale_zero_is_the_base_model_and_one_changes_it(runtime: Any, adapter: Path) -> None:
    base = _logits(runtime, PROMPT)
    runtime.set_lora(adapter, 0.0)
    np.testing.assert_array_equal(_logits(runtime, PROMPT), base)
    runtime.set_lora(adapter, 1.0)
    erased = _logits(runtime, PROMPT)
    runtime.set_lora(None)
    assert np.abs(erased - base).max() > 1e-3
    np.testing.assert_allclose(_logits(runtime, PROMPT), base, atol=1e-5)


def test_an_adapter_rewritten_in_place_is_loaded_again(
    runtime: Any, directions: Directions, tiny: Path, tmp_path: Path
) -> None:
    # --mitigate rewrites the model's adapter at the same path: the new tensors must apply.
    weights = ModelWeights(tiny)
    path = tmp_path / "same.gguf"
    outputs = []
    for blocks in ((0,), (3,), (0,)):
        write_erasure(path, weights, directions, dict.fromkeys(blocks, 1.0), {})
        runtime.set_lora(path, 1.0)
        outputs.append(_logits(runtime, PROMPT))
    runtime.set_lora(None)
    assert np.abs(outputs[0] - outputs[1]).max() > 1e-4
    np.testing.assert_allclose(outputs[2], outputs[0], atol=1e-5)


def _baked_copy(model: Path, adapter: Path, out: Path) -> Path:
    """The model with W + B A written into its tensors: what scale 1 must equal."""
    src, lora = gguf.GGUFReader(str(model)), gguf.GGUFReader(str(adapter))
    parts = {t.name: np.array(t.data) for t in lora.tensors}
    arch = src.get_field(gguf.Keys.General.ARCHITECTURE)
    assert arch is not None
    w = gguf.GGUFWriter(str(out), str(arch.contents()))
    for key, f in src.fields.items():
        if key.startswith("GGUF.") or key == gguf.Keys.General.ARCHITECTURE:
            continue
        sub = f.types[-1] if f.types[0] == gguf.GGUFValueType.ARRAY else None
        w.add_key_value(key, f.contents(), f.types[0], sub)
    for t in src.tensors:
        data = np.array(t.data, dtype=np.float32)
        a, b = parts.get(t.name + ".lora_a"), parts.get(t.name + ".lora_b")
        if a is not None and b is not None:
            data = data + (a @ b.T if t.name.startswith("token_embd") else b @ a)
        w.add_tensor(t.name, data.astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return out


def test_scale_one_is_exactly_the_projected_model(
    runtime: Any, adapter: Path, tiny: Path, tmp_path: Path
) -> None:
    runtime.set_lora(adapter, 1.0)
    with_adapter = _logits(runtime, PROMPT)
    runtime.set_lora(None)
    baked = open_runtime(plan_run(_baked_copy(tiny, adapter, tmp_path / "baked.gguf"), "cpu", 256))
    try:
        np.testing.assert_allclose(_logits(baked, PROMPT), with_adapter, atol=2e-3, rtol=1e-3)
    finally:
        baked.close()


def test_an_adapter_for_another_model_is_refused_before_loading(
    adapter: Path, tmp_path: Path
) -> None:
    other = write_tiny_llama(tmp_path / "wide.gguf", n_layers=4, n_embd=32, n_ff=64)
    with pytest.raises(AdapterFileError, match="made for another model"):
        check_adapter(adapter, load_model_info(other))
    shallow = write_tiny_llama(tmp_path / "shallow.gguf", n_layers=2)
    with pytest.raises(AdapterFileError, match="does not have"):
        check_adapter(adapter, load_model_info(shallow))
    with pytest.raises(AdapterFileError, match="not a LoRA adapter"):
        check_adapter(other, load_model_info(other))


def test_partial_alphas_only_touch_their_blocks(directions: Directions, tiny: Path) -> None:
    tensors = build_adapter(ModelWeights(tiny), directions, {2: 0.5, 3: 0.0})
    assert {t.base for t in tensors} == {"blk.2.attn_output.weight"}
    assert all(np.isfinite(t.a).all() and np.isfinite(t.b).all() for t in tensors)


def test_readers_name_the_matrices_an_eraser_rewrites(directions: Directions, tiny: Path) -> None:
    weights = ModelWeights(tiny)
    tensors = {t.base: t for t in build_adapter(weights, directions, {1: 1.0})}
    assert set(tensors) == {"blk.1.attn_output.weight"}
    # R' = R (I - D A): A is the eraser's readout, B = -R D from the model's own weight.
    pair = tensors["blk.1.attn_output.weight"]
    eraser = directions.erasers[("kqv_out", 1)]
    np.testing.assert_array_equal(pair.a, eraser.readout)
    expected = -weights.get("blk.1.attn_output.weight").astype(np.float64) @ eraser.delta
    np.testing.assert_allclose(pair.b, expected, rtol=1e-5, atol=1e-6)


def _llama_cli(model: Path, adapter: Path, scale: float, prompt: str) -> str:
    """llama-cli's reply (one turn, greedy, 8 tokens) with the adapter at `scale`."""
    from edgekit.backends.llama_cpp.build import tool_path
    from edgekit.errors import EdgekitError

    try:
        cli = tool_path("llama-cli")
    except EdgekitError:
        pytest.skip("llama.cpp's llama-cli is not built here")
    args = [str(cli), "-m", str(model), "--lora-scaled", f"{adapter}:{scale}", "-p", prompt]
    args += ["-st", "-n", "8", "--temp", "0", "-s", "1", "-t", "2", "--no-warmup"]
    args += ["--no-display-prompt", "--no-show-timings"]
    done = subprocess.run(
        args,
        capture_output=True,
        text=True,
        errors="replace",
        stdin=subprocess.DEVNULL,
        timeout=300,
        check=True,
    )
    # The one-turn UI echoes "> prompt", then the reply, then "Exiting...".
    return done.stdout.split(prompt, 1)[-1].split("Exiting...")[0].strip()


def _decided_steps(runtime: Any, tokens: list[int], n: int, margin: float = 0.01) -> int:
    """How many of the first `n` greedy steps win by more than `margin` in the logits. A random
    tiny model has near-ties, and llama-cli and edgekit (other batch sizes, so other kernels and
    summation orders) broke one 0.0016 apart differently; 0.01 leaves room for that."""
    source = runtime.logits()
    try:
        seq = list(tokens)
        for step in range(n):
            row = np.array(source.logits_from([*seq, 0], len(seq) - 1))[-1]
            second, first = np.sort(row)[-2:]
            if first - second <= margin:
                return step
            seq.append(int(np.argmax(row)))
        return n
    finally:
        source.close()


def _greedy(runtime: Any, tokens: list[int], n: int) -> str:
    return str(runtime.generate(tokens, SamplingParams(max_tokens=n, temperature=0.0, seed=1)).text)


def _decided_prompt(runtime: Any, adapter: Path) -> tuple[str, list[int], dict[float, int]]:
    """The first prompt whose first greedy steps are decided (>= 3) at scales 0 and 1: which
    prompt a random tiny model has no near-tie on changes with the adapter's directions."""
    for prompt in ("the river and the city", "a small house", "the old bridge at night"):
        tokens = runtime.prompt_tokens(runtime.format_chat([{"role": "user", "content": prompt}]))
        decided = {}
        for scale in (0.0, 1.0):
            runtime.set_lora(adapter, scale)
            decided[scale] = _decided_steps(runtime, tokens, 8)
            runtime.set_lora(None)
        if min(decided.values()) >= 3:
            return prompt, tokens, decided
    raise AssertionError("every prompt has a near-tie in its first three greedy steps")


def test_llama_cli_gives_the_same_first_tokens_as_edgekit(
    runtime: Any, adapter: Path, tiny: Path
) -> None:
    prompt, tokens, decided = _decided_prompt(runtime, adapter)
    ours = {}
    for scale in (0.0, 1.0):
        runtime.set_lora(adapter, scale)
        ours[scale] = _greedy(runtime, tokens, 8)
        head = _greedy(runtime, tokens, decided[scale])
        runtime.set_lora(None)
        theirs = _llama_cli(tiny, adapter, scale, prompt)
        # The reply read from llama-cli's screen is stripped, and an incomplete UTF-8 sequence
        # at the end of edgekit's decided tokens is flushed as U+FFFD where llama-cli goes on.
        head = head.lstrip().rstrip("\ufffd")
        assert head, (scale, decided, head)
        assert theirs.startswith(head), (scale, decided, head, theirs)
    assert ours[0.0] != ours[1.0]  # the adapter is really applied on both sides
