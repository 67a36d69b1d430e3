"""`edgekit run --bias-guard`: the feedback loop around each generation.

Per turn: generate with the erasure adapter at the current scale; score the output; let the
controller (controller.py) raise or relax the scale for the next generation; regenerate when the
output was over the threshold. The loop state and every adjustment go to the history database
(and the `edgekit.bias` logger), so a session resumed later, or the dashboard, sees the same
state.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from edgekit.backends.base import GenerationResult, SamplingParams, TokenCallback
from edgekit.bias import store
from edgekit.bias.controller import (
    Adjustment,
    Constraint,
    LoopConfig,
    LoopState,
    next_turn,
    step,
)
from edgekit.bias.outputs import LexiconScorer, OutputBias

log = logging.getLogger("edgekit.bias")

MAX_SCALE = 1.0  # the exact erasure (ScaleLimits)
FLOOR_SHARE = 0.5
# The guards' scale follows an exponential average of the outputs' bias with this weight on the
# newest (a memory of about 2/SMOOTHING - 1 = 5 outputs): one output's score is a noisy probe,
# most outputs name no group at all, and each change of scale costs a served batch its
# neighbours (edgekit.serving.guard.MIN_SCALE_STEP).
SMOOTHING = 1 / 3


@dataclass(frozen=True)
class ScaleLimits:
    """The range every guard (run, dashboard, serve) keeps an erasure adapter's scale in.

    - ceiling: the scale `edgekit bias --mitigate` calibrated and checked against its perplexity
      and accuracy limits, and never above 1. Scale 1 is the exact erasure, W' = (I - D A) W;
      past 1 the adapter reflects the erased component (W - 2 D A W at scale 2) instead of
      removing it, which no calibration measured.
    - floor: FLOOR_SHARE of the ceiling. A session starts at the ceiling (the adapter as it was
      validated); outputs that score clean relax it toward the floor, and biased ones push it
      back up. A floor above 0 keeps a partial erasure on through a long clean stretch, where a
      per-output score (noisy on a small model) would otherwise turn the erasure off entirely.
    """

    floor: float
    ceiling: float

    @classmethod
    def from_calibrated(cls, calibrated: float) -> ScaleLimits:
        """From the calibrated scale; an uncalibrated adapter (0) gets the exact erasure."""
        ceiling = min(MAX_SCALE, calibrated) if calibrated > 0 else MAX_SCALE
        return cls(floor=FLOOR_SHARE * ceiling, ceiling=ceiling)


def loop_config(limits: ScaleLimits, base: LoopConfig | None = None) -> LoopConfig:
    """The controller's settings within `limits`, following the bias averaged over the last
    few outputs (SMOOTHING); serve passes no regenerations (a served response has already gone
    to the client)."""
    return replace(
        base or LoopConfig(), floor=limits.floor, max_strength=limits.ceiling, smoothing=SMOOTHING
    )


class OutputScorer(Protocol):
    name: str

    def score(self, text: str) -> OutputBias: ...


@dataclass
class GuardedResult:
    result: GenerationResult  # the output kept (the last one when regenerated)
    adjustments: list[Adjustment] = field(default_factory=list)
    discarded: list[str] = field(default_factory=list)  # outputs replaced by a regeneration

    @property
    def regenerated(self) -> bool:
        return bool(self.discarded)

    def to_dict(self) -> dict[str, Any]:
        """The guard's part of `edgekit run --json`."""
        return {
            "regenerated": self.regenerated,
            "discarded": self.discarded,
            "strength": self.adjustments[-1].strength_after if self.adjustments else None,
            "adjustments": [a.to_dict() for a in self.adjustments],
        }


def describe(adjustment: Adjustment) -> str:
    """One line for a front to show when the guard regenerates."""
    return (
        f"bias guard: output scored {adjustment.measured:.2f}, regenerating with the "
        f"constraint at strength {adjustment.strength_after:.2f}"
    )


class LoopSession(Protocol):
    """What a loop persists: its state and its controller's settings."""

    state: LoopState
    config: LoopConfig


def score_and_step(
    scorer: OutputScorer,
    text: str,
    state: LoopState,
    config: LoopConfig,
    regenerations: int = 0,
) -> tuple[LoopState, Adjustment]:
    """Score one output and let the controller move the scale; the adjustment is logged.

    Shared by `run --bias-guard` and the served guard (edgekit.serving.guard), so both write
    the same rows and log lines.
    """
    measured = scorer.score(text)
    state, adj = step(
        state,
        measured.score,
        config,
        regenerations,
        detail={"scorer": scorer.name, **measured.to_dict()},
    )
    log.info(
        "bias guard turn %d: measured %.3f, strength %.3f -> %.3f (%s%s)",
        adj.turn,
        adj.measured,
        adj.strength_before,
        adj.strength_after,
        adj.action,
        ", regenerating" if adj.regenerate else "",
    )
    return state, adj


def persist(
    conn: Any,
    session_id: str,
    model_hash: str,
    device: str,
    source: str,
    session: LoopSession,
    adjustment: Adjustment | None,
) -> None:
    """The loop's state (and the adjustment that led to it) as one history transaction."""
    state = {"state": session.state.to_dict(), "config": session.config.to_dict()}
    store.save_session(
        conn,
        session_id,
        model_hash,
        device,
        source,
        state,
        adjustment.to_dict() if adjustment else None,
    )


class BiasGuard:
    """Wraps a runtime's generate() with the bias feedback loop (one per chat session)."""

    def __init__(
        self,
        runtime: Any,
        constraint: Constraint,
        config: LoopConfig | None = None,
        scorer: OutputScorer | None = None,
        conn: Any | None = None,
        session_id: str | None = None,
        model_hash: str = "",
        device: str = "",
        initial_strength: float | None = None,
    ) -> None:
        self.runtime = runtime
        self.constraint = constraint
        self.config = config or LoopConfig()
        self.scorer: OutputScorer = scorer or LexiconScorer()
        self.conn = conn
        self.session_id = session_id or uuid.uuid4().hex[:12]
        self.model_hash = model_hash
        self.device = device
        saved = store.load_session(conn, self.session_id) if conn is not None else None
        if saved is not None:
            self.state = LoopState.from_dict(saved.get("state", {}))
        else:
            start = self.config.floor if initial_strength is None else initial_strength
            self.state = LoopState(strength=start)
        self._applied: float | None = None
        self._persist(None)

    def _apply(self) -> None:
        if self._applied == self.state.strength:
            return
        self.constraint.apply(self.state.strength)
        self._applied = self.state.strength

    def invalidate(self) -> None:
        """Something else changed the context's adapters: re-apply ours next time."""
        self._applied = None

    def _persist(self, adjustment: Adjustment | None) -> None:
        if self.conn is None:
            return
        persist(self.conn, self.session_id, self.model_hash, self.device, "guard", self, adjustment)

    def generate(
        self,
        tokens: list[int],
        params: SamplingParams,
        on_token: TokenCallback | None = None,
        on_regenerate: Callable[[Adjustment], None] | None = None,
    ) -> GuardedResult:
        out = GuardedResult(self._generate(tokens, params, on_token))
        regenerations = 0
        while True:
            self.state, adj = score_and_step(
                self.scorer, out.result.text, self.state, self.config, regenerations
            )
            out.adjustments.append(adj)
            self._persist(adj)
            if not adj.regenerate:
                break
            regenerations += 1
            if on_regenerate:
                on_regenerate(adj)
            out.discarded.append(out.result.text)
            out.result = self._generate(tokens, params, on_token)
        self.state = next_turn(self.state)
        self._persist(None)
        return out

    def _generate(
        self, tokens: list[int], params: SamplingParams, on_token: TokenCallback | None
    ) -> GenerationResult:
        self._apply()
        result: GenerationResult = self.runtime.generate(tokens, params, on_token)
        return result

    def close(self) -> None:
        self.constraint.apply(0.0)
        self._applied = None


def open_guard(
    runtime: Any,
    device: str,
    session_id: str | None = None,
    scorer: str = "lexicon",
    notify: Callable[[str], None] | None = None,
    config: LoopConfig | None = None,
) -> BiasGuard:
    """A guard for `edgekit run --bias-guard`, with the model's saved constraint and history.

    The scale starts at the one `edgekit bias --mitigate` calibrated for this model and stays
    within ScaleLimits; the adapter is derived on first use (once per model).
    """
    from edgekit.bias.controller import ErasureConstraint, load_or_derive, require_runtime

    runtime = require_runtime(runtime)
    model_hash = store.model_fingerprint(runtime.info.path)
    conn = store.connect()
    erasure = load_or_derive(runtime, model_hash, notify)
    limits = ScaleLimits.from_calibrated(erasure.scale)
    cfg = loop_config(limits, config)
    output_scorer: OutputScorer
    if scorer == "probe":
        from edgekit.bias.outputs import ProbeScorer

        output_scorer = ProbeScorer(runtime)
    else:
        output_scorer = LexiconScorer()
    return BiasGuard(
        runtime,
        ErasureConstraint(runtime, erasure.adapter),
        cfg,
        output_scorer,
        conn=conn,
        session_id=session_id,
        model_hash=model_hash,
        device=device,
        initial_strength=limits.ceiling,
    )


class GuardedRuntime:
    """A Runtime whose generate() goes through a BiasGuard: a drop-in for `edgekit run`.

    Each generate() returns the output that was kept; `last` holds the guard's record of the
    turn (adjustments, discarded outputs) for fronts that show it, e.g. in --json.
    """

    def __init__(
        self, guard: BiasGuard, on_regenerate: Callable[[Adjustment], None] | None = None
    ) -> None:
        self.guard = guard
        self.inner = guard.runtime
        self.notes: list[str] = list(getattr(self.inner, "notes", []))
        self.on_regenerate = on_regenerate
        self.last: GuardedResult | None = None

    def tokenize(self, text: str) -> list[int]:
        return list(self.inner.tokenize(text))

    def prompt_tokens(self, text: str) -> list[int]:
        return list(self.inner.prompt_tokens(text))

    def format_chat(self, messages: Sequence[dict[str, str]]) -> str:
        return str(self.inner.format_chat(messages))

    def generate(
        self, tokens: list[int], params: SamplingParams, on_token: TokenCallback | None = None
    ) -> GenerationResult:
        self.last = self.guard.generate(tokens, params, on_token, self.on_regenerate)
        return self.last.result

    def close(self) -> None:
        self.guard.close()
        if self.guard.conn is not None:
            self.guard.conn.close()
        self.inner.close()


def guard_runtime(
    runtime: Any,
    device: str,
    notify: Callable[[str], None] | None = None,
    session_id: str | None = None,
    scorer: str = "lexicon",
) -> GuardedRuntime:
    """`edgekit run --bias-guard`: wrap the opened runtime; regenerations are announced."""
    guard = open_guard(runtime, device, session_id, scorer, notify)

    def announce(adjustment: Adjustment) -> None:
        if notify:
            notify(describe(adjustment))

    return GuardedRuntime(guard, announce)
