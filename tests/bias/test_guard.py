"""The bias guard around real generation on a tiny model: raise, regenerate, relax, persist."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgekit.backends.base import GenerationResult, SamplingParams
from edgekit.backends.runner import open_runtime, plan_run
from edgekit.bias import history, store
from edgekit.bias.controller import ErasureConstraint, LoopConfig, require_runtime, write_erasure
from edgekit.bias.erasure import Directions, ModelWeights
from edgekit.bias.guard import BiasGuard, describe

BIASED = "The woman worked as a nurse."
CLEAN = "The train left on time."


@pytest.fixture(scope="module")
def runtime(tiny4_model: Path) -> Iterator[Any]:
    rt = require_runtime(open_runtime(plan_run(tiny4_model, "cpu", 256)))
    yield rt
    rt.close()


@pytest.fixture(scope="module")
def adapter(runtime: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real erasure adapter for the tiny model (random directions: the loop is under test)."""
    rng = np.random.default_rng(0)
    bases = {
        b: np.linalg.qr(rng.standard_normal((64, 2)))[0].T.astype(np.float32) for b in range(4)
    }
    path = tmp_path_factory.mktemp("guard-adapter") / "erase.gguf"
    weights = ModelWeights(runtime.info.path)
    directions = Directions.orthogonal(bases)
    return write_erasure(path, weights, directions, dict.fromkeys(bases, 1.0), {})


class Scripted:
    """The real runtime (adapter and all), with each output's text replaced by a script.

    The tiny model's text is random; the script makes "what the model said" known, so the
    loop's decisions can be asserted exactly.
    """

    def __init__(self, runtime: Any, texts: list[str]) -> None:
        self.inner, self.texts = runtime, list(texts)
        self.generated: list[str] = []  # the real (random) generations, to check determinism

    def generate(self, tokens: list[int], params: SamplingParams, on_token: Any) -> Any:
        real: GenerationResult = self.inner.generate(tokens, params, on_token)
        self.generated.append(real.text)
        return replace(real, text=self.texts.pop(0))


def _erasure(runtime: Any, adapter: Path) -> ErasureConstraint:
    return ErasureConstraint(runtime, adapter)


CONFIG = LoopConfig(target=0.1, threshold=0.5, gain=1.0, min_step=0.25, relax=0.5)
PARAMS = SamplingParams(max_tokens=6, seed=7)


def test_guard_raises_regenerates_relaxes_and_persists(
    runtime: Any, adapter: Path, tmp_path: Path
) -> None:
    db = tmp_path / "h.sqlite3"
    scripted = Scripted(runtime, [BIASED, CLEAN, CLEAN])
    conn = store.connect(db)
    guard = BiasGuard(
        scripted, _erasure(runtime, adapter), CONFIG, conn=conn, session_id="s", model_hash="h"
    )
    tokens = runtime.prompt_tokens("the river")

    first = guard.generate(tokens, PARAMS)
    assert first.regenerated and first.discarded == [BIASED] and first.result.text == CLEAN
    assert [a.action for a in first.adjustments] == ["raise", "relax"]
    raised = first.adjustments[0].strength_after
    assert raised == pytest.approx(0.9)
    assert guard.state.strength == pytest.approx(0.45) and guard.state.turn == 1
    shown = first.to_dict()
    assert shown["regenerated"] and shown["strength"] == pytest.approx(0.45)
    assert "regenerating" in describe(first.adjustments[0])

    second = guard.generate(tokens, PARAMS)
    assert not second.regenerated and second.adjustments[0].action == "relax"
    assert guard.state.strength == pytest.approx(0.225)
    conn.close()

    # A new guard on the same session resumes the state; the log holds every adjustment.
    conn = store.connect(db)
    resumed = BiasGuard(scripted, _erasure(runtime, adapter), CONFIG, conn=conn, session_id="s")
    assert resumed.state == guard.state
    conn.close()
    state = history.loop_state(db, "s")
    assert state is not None
    assert [(e["action"], e["regenerate"]) for e in state["events"]] == [
        ("raise", True),
        ("relax", False),
        ("relax", False),
    ]
    guard.close()


def test_guard_generation_is_seeded(runtime: Any, adapter: Path) -> None:
    runs = []
    for _ in range(2):
        scripted = Scripted(runtime, [BIASED, CLEAN])
        guard = BiasGuard(scripted, _erasure(runtime, adapter), CONFIG)
        guard.generate(runtime.prompt_tokens("the river"), PARAMS)
        guard.close()
        runs.append(scripted.generated)
    # Same seed, same scales: the same two real generations, and the adapter changed
    # what the model produced the second time.
    assert runs[0] == runs[1]
    assert runs[0][0] != runs[0][1]


def test_probe_scorer_asks_the_model_only_when_groups_are_mentioned(
    runtime: Any,
) -> None:
    from edgekit.bias.outputs import ProbeScorer

    scorer = ProbeScorer(runtime)
    assert scorer.score(CLEAN).score == 0.0
    mentioned = scorer.score("The old man and the young woman talked about the river.")
    assert 0.0 <= mentioned.score <= 1.0
    assert mentioned.stereotyped + mentioned.counter > 0  # it ran the gender and age probes
    assert set(mentioned.categories) <= {"gender", "age"}


def test_open_guard_derives_once_and_logs_to_the_history(runtime: Any, isolated_data: Path) -> None:
    from edgekit.bias.controller import adapter_path
    from edgekit.bias.guard import open_guard
    from edgekit.bias.store import model_fingerprint

    notes: list[str] = []
    guard = open_guard(runtime, "cpu", session_id="chat", notify=notes.append)
    assert adapter_path(model_fingerprint(runtime.info.path)).is_file() and notes
    guard.generate(runtime.prompt_tokens("the river"), PARAMS)
    guard.close()
    again = open_guard(runtime, "cpu", session_id="chat", notify=notes.append)
    assert len(notes) == 1 and again.state.turn == 1  # no second derivation; state resumed
    assert guard.conn is not None
    guard.conn.close()
    assert again.conn is not None
    again.conn.close()
    state = history.loop_state(isolated_data / "bias_history.sqlite3", "chat")
    assert state is not None and len(state["events"]) == 1


def test_guard_runtime_is_a_drop_in_for_run(tiny4_model: Path, isolated_data: Path) -> None:
    from edgekit.bias.guard import guard_runtime

    inner = require_runtime(open_runtime(plan_run(tiny4_model, "cpu", 256)))
    notes: list[str] = []
    runtime = guard_runtime(inner, "cpu", notify=notes.append, session_id="run")
    pieces: list[str] = []
    result = runtime.generate(runtime.prompt_tokens("the river"), PARAMS, pieces.append)
    runtime.close()
    assert "".join(pieces) == result.text and runtime.last is not None
    assert runtime.last.result is result and len(runtime.last.adjustments) == 1
    state = history.loop_state(isolated_data / "bias_history.sqlite3", "run")
    assert state is not None and state["state"]["turn"] == 1
