"""The contract every registered back end keeps, run the same way over each of them (as harlequin
runs its adapter contract over every adapter): a tiny model of each back end is planned, opened,
generates with consistent stats, declares its capabilities as data that its runtime honours, and
closes. A new back end adds its tiny model to TINY_MODEL and passes these checks unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgekit.backends import Backend, Capability, backend_for, get_backend, registry
from edgekit.backends.base import (
    AdapterRuntime,
    GenerationResult,
    RunPlan,
    SamplingParams,
    ScoringRuntime,
)
from edgekit.errors import ModelTooBigError

# The session fixture (tests/conftest.py) holding a tiny model of each back end.
TINY_MODEL = {"llama_cpp": "tiny_model", "onnx": "tiny_onnx_model"}
# What each back end's model needs beyond the base install (the convert extra builds the ONNX one).
NEEDS = {"llama_cpp": ("llama_cpp",), "onnx": ("torch", "optimum.exporters.onnx", "onnxruntime")}
RUNTIME_METHODS = ("tokenize", "prompt_tokens", "format_chat", "generate", "close")
GREEDY = SamplingParams(max_tokens=8, temperature=0.0)
PROMPT = "the river and the city"
EVAL_TEXT = " ".join(f"the {w} of the river ran north past the old city" for w in range(60))


@pytest.fixture(scope="module", params=sorted(TINY_MODEL))
def name(request: pytest.FixtureRequest) -> str:
    for module in NEEDS[request.param]:
        pytest.importorskip(module)
    return str(request.param)


@pytest.fixture(scope="module")
def backend(name: str) -> Backend:
    return get_backend(name)


@pytest.fixture(scope="module")
def model(name: str, request: pytest.FixtureRequest) -> Path:
    path: Path = request.getfixturevalue(TINY_MODEL[name])
    return path


@pytest.fixture(scope="module")
def plan(backend: Backend, model: Path) -> RunPlan:
    return backend.plan(model, "cpu", 128)


@pytest.fixture(scope="module")
def runtime(backend: Backend, plan: RunPlan) -> Iterator[Any]:
    """One open runtime per back end, shared by the checks that only generate with it."""
    rt = backend.open(plan)
    yield rt
    rt.close()


def test_every_registered_back_end_is_under_contract() -> None:
    assert set(registry()) == set(TINY_MODEL)


def test_capabilities_are_declared_data(name: str, backend: Backend) -> None:
    declared = type(backend).__dict__["capabilities"]  # a class attribute, not computed per call
    assert isinstance(declared, frozenset) and declared == backend.capabilities
    assert all(isinstance(c, Capability) for c in declared)
    assert Capability.GENERATE in declared
    assert backend.name == name


def test_the_registry_hands_the_model_to_its_back_end(
    backend: Backend, model: Path, tmp_path: Path
) -> None:
    assert backend.accepts(model)
    assert not backend.accepts(tmp_path / "missing")
    assert backend_for(model) is backend
    for capability in backend.capabilities:
        assert backend_for(model, capability) is backend


def test_plan_decides_everything_before_loading(name: str, plan: RunPlan, model: Path) -> None:
    assert plan.backend == name and plan.n_ctx == 128 and plan.threads is None
    assert plan.info.path == model and plan.profile.name == "cpu"
    assert plan.estimate.fits and plan.estimate.total > 0


def test_plan_refuses_a_model_that_does_not_fit(
    backend: Backend, model: Path, user_config: Path
) -> None:
    (user_config / "watch.toml").write_text("[runtime]\nthreads = 1\n[memory]\nbudget_mb = 1\n")
    with pytest.raises(ModelTooBigError):
        backend.plan(model, "watch", 128)


def test_generate_streams_its_text_and_reports_consistent_stats(runtime: Any) -> None:
    tokens = runtime.prompt_tokens(PROMPT)
    assert tokens and all(isinstance(t, int) for t in tokens)
    pieces: list[str] = []
    result = runtime.generate(tokens, GREEDY, pieces.append)
    assert isinstance(result, GenerationResult)
    assert "".join(pieces) == result.text
    stats = result.stats
    assert stats.prompt_tokens == len(tokens)
    assert stats.stop_reason in ("eos", "length")
    assert stats.generated_tokens == GREEDY.max_tokens or stats.stop_reason == "eos"
    assert 0 <= stats.time_to_first_token_s <= stats.total_s
    assert stats.prompt_tokens_per_s > 0 and stats.decode_tokens_per_s >= 0
    assert stats.peak_rss_bytes > 0
    assert set(stats.to_dict()) >= {"generated_tokens", "decode_tokens_per_s", "stop_reason"}


def test_greedy_and_seeded_generation_are_reproducible(runtime: Any) -> None:
    tokens = runtime.prompt_tokens(PROMPT)
    assert runtime.generate(tokens, GREEDY).text == runtime.generate(tokens, GREEDY).text
    seeded = SamplingParams(max_tokens=8, temperature=1.0, seed=11)
    assert runtime.generate(tokens, seeded).text == runtime.generate(tokens, seeded).text


def test_chat_turns_become_one_prompt(runtime: Any) -> None:
    chat = runtime.format_chat([{"role": "user", "content": "hello there"}])
    assert isinstance(chat, str) and "hello there" in chat
    assert len(runtime.prompt_tokens(chat)) > len(runtime.tokenize("hello there"))


def test_the_runtime_honours_the_declared_capabilities(backend: Backend, runtime: Any) -> None:
    """A capability is declared exactly when the runtime implements its protocol."""
    assert all(callable(getattr(runtime, m, None)) for m in RUNTIME_METHODS)
    assert isinstance(runtime.notes, list)
    caps = backend.capabilities
    assert (Capability.SCORE in caps) == isinstance(runtime, ScoringRuntime)
    assert (Capability.ADAPTERS in caps) == isinstance(runtime, AdapterRuntime)


def test_a_model_evaluated_against_itself_has_no_divergence(backend: Backend, model: Path) -> None:
    if Capability.EVALUATE not in backend.capabilities:
        return
    reference, [same] = backend.evaluate(model, [model], EVAL_TEXT, max_windows=1, threads=1)
    assert reference.n_tokens > 0 and reference.ppl > 1
    assert same.kld == pytest.approx(0.0, abs=1e-6) and same.top1 == 1.0
    assert backend.decode_speed(model, 1) > 0


def test_a_fresh_runtime_opens_generates_and_closes(backend: Backend, plan: RunPlan) -> None:
    rt = backend.open(plan)
    assert rt.generate(rt.prompt_tokens(PROMPT), SamplingParams(max_tokens=2)).text is not None
    rt.close()
