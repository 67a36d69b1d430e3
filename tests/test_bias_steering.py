"""Control vectors: the GGUF file round-trips and llama.cpp applies it; steering moves log-probs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import gguf
import numpy as np
import pytest

from edgekit.backends.llama_cpp.runtime import LlamaCppRuntime
from edgekit.bias.control import apply_control, clear_control, require_llama_cpp
from edgekit.bias.cvec_file import (
    ARCH,
    KEY_LAYER_COUNT,
    KEY_MODEL_HINT,
    read_control_vector,
    read_with_llama_cpp,
    write_control_vector,
)
from edgekit.bias.hidden import HiddenStateReader
from edgekit.bias.scoring import LogProbScorer
from edgekit.bias.steering import LayerSchedule, control_matrix, derive_vectors
from edgekit.errors import ControlVectorFileError
from edgekit.runner import open_runtime, plan_run
from tests.tiny_models import write_tiny_llama

N_LAYERS = 4


@pytest.fixture(scope="module")
def tiny4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4-block tiny model: blocks 1 and 2 can be read whole and steered."""
    return write_tiny_llama(tmp_path_factory.mktemp("bias") / "tiny4.gguf", n_layers=N_LAYERS)


@pytest.fixture(scope="module")
def runtime(tiny4: Path) -> Iterator[LlamaCppRuntime]:
    rt = require_llama_cpp(open_runtime(plan_run(tiny4, "cpu", 256)))
    yield rt
    rt.close()


def _matrix(seed: int = 0, n_embd: int = 64) -> np.ndarray:
    m = np.random.default_rng(seed).standard_normal((N_LAYERS, n_embd)).astype(np.float32)
    m[0] = 0  # block 0 cannot be steered
    m[3] = 0  # and a block may be left out of the schedule
    return m


def test_file_round_trips_through_gguf_py_and_llama_cpp(tmp_path: Path) -> None:
    path = write_control_vector(tmp_path / "v.gguf", _matrix(), "llama", {"strength": 1.5})
    reader = gguf.GGUFReader(str(path))

    def field(key: str) -> object:
        f = reader.get_field(key)
        assert f is not None, key
        return f.contents()

    assert field(gguf.Keys.General.ARCHITECTURE) == ARCH
    assert field(KEY_MODEL_HINT) == "llama"
    assert field(KEY_LAYER_COUNT) == 2
    assert sorted(t.name for t in reader.tensors) == ["direction.1", "direction.2"]
    for read in (read_control_vector, read_with_llama_cpp):
        cv = read(path, N_LAYERS)
        np.testing.assert_array_equal(cv.matrix, _matrix())
        assert cv.model_hint == "llama" and cv.meta == {"strength": 1.5}


def test_llama_cpp_parser_rejects_what_its_loader_rejects(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    w = gguf.GGUFWriter(str(bad), ARCH)
    w.add_tensor("direction.0", np.ones(64, dtype=np.float32))  # layer 0 is invalid
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    for read in (read_control_vector, read_with_llama_cpp):
        with pytest.raises(ControlVectorFileError):
            read(bad, N_LAYERS)


def _last_logits(runtime: LlamaCppRuntime, text: str) -> np.ndarray:
    scorer = LogProbScorer(runtime.llm)
    tokens = scorer.tokenize(text)
    rows = scorer.logits_from([*tokens, 0], len(tokens) - 1)
    scorer.close()
    last: np.ndarray = rows[-1].copy()
    return last


def test_vector_read_back_by_llama_cpp_changes_the_model_and_clears(
    runtime: LlamaCppRuntime, tmp_path: Path
) -> None:
    path = write_control_vector(tmp_path / "v.gguf", _matrix() * 2, "llama")
    loaded = read_with_llama_cpp(path, N_LAYERS)
    plain = _last_logits(runtime, "the river of the north")
    apply_control(runtime.llm, loaded.matrix)
    steered = _last_logits(runtime, "the river of the north")
    clear_control(runtime.llm)
    again = _last_logits(runtime, "the river of the north")
    assert np.abs(steered - plain).max() > 1e-2
    np.testing.assert_allclose(again, plain, atol=1e-4)


def test_steering_vector_moves_the_target_continuation(runtime: LlamaCppRuntime) -> None:
    # Contrastive pairs that differ in their last word; the derived direction is the mean
    # hidden-state difference (second minus first), from llama.cpp's own block outputs.
    pairs = [
        ("the city of the north", "the city of the music"),
        ("the house by the north", "the house by the music"),
        ("the school in the north", "the school in the music"),
    ]
    reader = HiddenStateReader(runtime.llm, 64)
    vectors = derive_vectors(reader, runtime.tokenize, pairs)
    reader.close()
    assert set(np.nonzero(vectors.directions.any(axis=1))[0]) == {1, 2}
    scorer = LogProbScorer(runtime.llm)
    schedule = LayerSchedule.band(1, 2, 1.0)

    def target(strength: float) -> float:
        apply_control(runtime.llm, control_matrix(vectors, schedule, strength))
        value = scorer.text_logprob("the music of the", " river").total
        scorer.release()
        return value

    base = target(0.0)
    up, down = target(0.5) - base, target(-0.5) - base
    clear_control(runtime.llm)
    scorer.close()
    # It moves measurably, the two signs push opposite ways, and a weaker vector moves it less.
    assert abs(up) > 0.05 and abs(down) > 0.05 and up * down < 0
    apply_control(runtime.llm, control_matrix(vectors, schedule, 0.1))
    scorer = LogProbScorer(runtime.llm)
    small = scorer.text_logprob("the music of the", " river").total - base
    scorer.close()
    clear_control(runtime.llm)
    assert abs(small) < abs(up)


@pytest.mark.real_model
def test_default_model_hidden_states_and_a_known_association() -> None:
    from edgekit.bias.probes import build_suite
    from edgekit.bias.suite import run_suite

    rt = require_llama_cpp(open_runtime(plan_run(None, "cpu", 512)))
    try:
        reader = HiddenStateReader(rt.llm, 64)
        states = reader.run(rt.tokenize("The woman worked as a nurse."))
        reader.close()
        # Blocks 0..16 whole (block 17 only keeps the output row); 640 wide, one row per token.
        assert sorted(states) == list(range(17))
        assert {s.shape[1] for s in states.values()} == {640}
        suite = build_suite().only(category="gender")
        probe = next(p for p in suite.pairs if "nurse" in p.stereo_a)
        scorer = LogProbScorer(rt.llm)
        run = run_suite(scorer, type(suite)((probe,), ()))
        scorer.close()
    finally:
        rt.close()
    # Gemma 3 270M links women with nursing and men with engineering (d ~ 4 nats here).
    assert run.pairs[0].association > 1.0
