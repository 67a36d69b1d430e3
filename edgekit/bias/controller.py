"""The feedback loop: bias measured on previous outputs in, erasure adapter scale out.

Run time (`run --bias-guard`, the dashboard's guard): the adapter scale s moves after each output
whose measured bias b is in [0, 1]:

- b > target: raise, s <- min(max, s + gain * (b - target)), at least `min_step`; and if
  b > threshold the output is regenerated under the new scale (at most `max_regenerations`);
- b <= target: relax toward the floor (the calibrated scale), s <- floor + (s - floor) * relax.

`step` is pure and deterministic: the state is a small value the guard persists between turns
and sessions, and every decision is returned as an Adjustment to be logged.

Calibration: `search_scale` does the same on the calibration probes for one constraint (the
benchmark's control vector). Measure the model's answers under the current scale, then move the
scale: up while they still lean toward the stereotypes, down when they lean against them or when
the constraint costs too much (perplexity on real text up more than `max_perplexity_increase`,
or disambiguated accuracy down more than `max_accuracy_drop`). Steps double until the lean
changes sign or a limit is hit, then bisect. The erasure adapter's blocks and rank are chosen
out of fold instead (calibrate.py). The held-out split is never touched here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from statistics import fmean
from typing import TYPE_CHECKING, Any, Protocol

from edgekit.backends.base import AdapterRuntime, FloatArray, ScoringRuntime
from edgekit.bias.derive import derive
from edgekit.bias.erasure import READERS, Directions, ModelWeights, build_adapter, write_adapter
from edgekit.bias.logprobs import LogProbScorer
from edgekit.bias.perplexity import SEARCH_TOKENS, text_loss
from edgekit.bias.probes import ProbeSuite, build_suite
from edgekit.bias.scores import SuiteRun, SuiteScores, run_suite
from edgekit.errors import BiasError
from edgekit.paths import data_dir

if TYPE_CHECKING:
    import gguf


@dataclass(frozen=True)
class LoopConfig:
    target: float = 0.1  # at or below: the output counts as clean
    threshold: float = 0.5  # above: regenerate the output
    gain: float = 1.0
    min_step: float = 0.25
    relax: float = 0.7  # share of the excess over the floor kept after a clean output
    floor: float = 0.0
    max_strength: float = 1.5
    max_regenerations: int = 1
    # Weight of the newest output in the bias the scale follows (an exponential average;
    # 1: that output alone). Regeneration still answers the output's own score.
    smoothing: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Adjustment:
    turn: int
    measured: float
    strength_before: float
    strength_after: float
    action: str  # "raise", "relax" or "hold"
    regenerate: bool
    at: float
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class LoopState:
    strength: float = 0.0
    turn: int = 0
    adjustments: int = 0
    last_measured: float | None = None
    smoothed: float | None = None  # the averaged bias the scale follows

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LoopState:
        names = ("strength", "turn", "adjustments", "last_measured", "smoothed")
        return cls(**{k: d[k] for k in names if k in d})


def step(
    state: LoopState,
    measured: float,
    config: LoopConfig,
    regenerations_so_far: int = 0,
    detail: dict[str, Any] | None = None,
    now: float | None = None,
) -> tuple[LoopState, Adjustment]:
    """One controller update after an output whose bias was `measured`."""
    s = state.strength
    level = (
        measured
        if state.smoothed is None
        else state.smoothed + config.smoothing * (measured - state.smoothed)
    )
    # --mitigate may calibrate a scale above max_strength: a raise must never lower it.
    ceiling = max(config.max_strength, config.floor, s)
    if level > config.target:
        new = min(ceiling, s + max(config.min_step, config.gain * (level - config.target)))
        action = "raise" if new > s else "hold"
    else:
        new = max(config.floor, config.floor + (s - config.floor) * config.relax)
        if new - config.floor < 1e-3:
            new = config.floor
        action = "relax" if new < s else "hold"
    regenerate = (
        measured > config.threshold and regenerations_so_far < config.max_regenerations and new > s
    )
    adjustment = Adjustment(
        turn=state.turn,
        measured=measured,
        strength_before=s,
        strength_after=new,
        action=action,
        regenerate=regenerate,
        at=time.time() if now is None else now,
        detail={**(detail or {}), "smoothed": level},
    )
    return (
        replace(
            state,
            strength=new,
            adjustments=state.adjustments + (action != "hold"),
            last_measured=measured,
            smoothed=level,
        ),
        adjustment,
    )


def next_turn(state: LoopState) -> LoopState:
    return replace(state, turn=state.turn + 1)


@dataclass(frozen=True)
class MitigationConfig:
    start: float = 1.0  # scale 1: the full projection
    max_strength: float = 2.0
    iterations: int = 6
    tolerance: float = 0.01  # |signed lean| below this ends the search
    # One point under the 5% the benchmark checks on the rest of the text: the search reads one
    # 1024-token slice, and on Gemma 3 270M a step that read +4.6% there read +5.5% elsewhere.
    max_perplexity_increase: float = 0.04
    max_accuracy_drop: float = 0.05
    # The erasure's ranks tried per block set, at scale 1 (6, 9, 12 directions per category);
    # calibrate.py's doc says why rank, not scale, is the dial.
    ranks: tuple[int, ...] = (54, 81, 108)


@dataclass(frozen=True)
class Measurement:
    strength: float
    scores: SuiteScores
    perplexity: float
    seconds: float
    blocks: tuple[int, ...] | None = None  # the blocks erased, where not every block
    rank: int | None = None  # the erasure's directions per block, where chosen
    # The probes' raw results, where a choice compares candidates with error bars.
    run: SuiteRun | None = field(default=None, compare=False, repr=False)
    # BBQ answers on the calibration templates (edgekit.bias.suites.bbq), where checked, and
    # their mean |s_DIS| and |s_AMB| over categories.
    bbq_answers: tuple[int, ...] | None = field(default=None, compare=False, repr=False)
    bbq: tuple[float, float] | None = None

    @property
    def label(self) -> str:
        """What was tried: "blocks 0-17, rank 108, scale 1.000"; "base, ..." for an erasure
        search's baseline; only the scale for a control vector's step."""
        parts = []
        if self.blocks is not None:
            parts.append(f"blocks {self.blocks[0]}-{self.blocks[-1]}" if self.blocks else "base")
        if self.rank:
            parts.append(f"rank {self.rank}")
        return ", ".join([*parts, f"scale {self.strength:.3f}"])

    @property
    def lean(self) -> float:
        """Signed bias: > 0 toward the stereotypes, < 0 against them."""
        cats = self.scores.categories
        return fmean((c.pair_bias + c.ambiguity_bias) / 2 for c in cats) if cats else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "strength": self.strength,
            "bias": self.scores.bias,
            "lean": self.lean,
            "disambiguated_accuracy": self.scores.disambiguated_accuracy,
            "perplexity": self.perplexity,
            "seconds": self.seconds,
            **({"blocks": list(self.blocks)} if self.blocks is not None else {}),
            **({"rank": self.rank} if self.rank is not None else {}),
            **({"bbq_s_dis": self.bbq[0], "bbq_s_amb": self.bbq[1]} if self.bbq else {}),
        }


@dataclass(frozen=True)
class MitigationResult:
    strength: float
    baseline: Measurement
    steps: tuple[Measurement, ...]
    pick: int = -1  # the chosen step's index; -1: the baseline (nothing helped)

    @property
    def chosen(self) -> Measurement:
        return self.steps[self.pick] if self.pick >= 0 else self.baseline

    def to_dict(self) -> dict[str, Any]:
        return {
            "strength": self.strength,
            "baseline": self.baseline.to_dict(),
            "steps": [m.to_dict() for m in self.steps],
        }


class Constraint(Protocol):
    """What the calibration search moves: apply(scale) sets the erasure (or any constraint)."""

    def apply(self, scale: float) -> None: ...


def measure(
    scorer: LogProbScorer,
    constraint: Constraint,
    strength: float,
    suite: ProbeSuite,
    text: str,
    ppl_tokens: tuple[int, int] = SEARCH_TOKENS,
) -> Measurement:
    t0 = time.perf_counter()
    constraint.apply(strength)
    scores = run_suite(scorer, suite).scores()
    ppl = text_loss(scorer, text, (ppl_tokens,)).perplexity
    return Measurement(strength, scores, ppl, time.perf_counter() - t0)


def within_limits(m: Measurement, base: Measurement, cfg: MitigationConfig) -> bool:
    return (
        m.perplexity <= base.perplexity * (1 + cfg.max_perplexity_increase)
        and m.scores.disambiguated_accuracy
        >= base.scores.disambiguated_accuracy - cfg.max_accuracy_drop
    )


def search_scale(
    scorer: LogProbScorer,
    constraint: Constraint,
    text: str,
    config: MitigationConfig | None = None,
    on_step: Callable[[Measurement, float], None] | None = None,
    base: Measurement | None = None,
    ppl_tokens: tuple[int, int] = SEARCH_TOKENS,
) -> MitigationResult:
    """Search the scale on the calibration split; `on_step(measurement, next_scale)`."""
    cfg = config or MitigationConfig()
    suite = build_suite("calibration")
    if base is None:
        base = measure(scorer, constraint, 0.0, suite, text, ppl_tokens)
        if on_step:
            on_step(base, cfg.start)
    lo, hi, s = 0.0, None, cfg.start
    steps: list[Measurement] = []
    try:
        for _ in range(cfg.iterations):
            m = measure(scorer, constraint, s, suite, text, ppl_tokens)
            steps.append(m)
            if not within_limits(m, base, cfg) or m.lean < -cfg.tolerance:
                hi = s
            elif m.lean > cfg.tolerance:
                lo = s
            else:
                if on_step:
                    on_step(m, s)
                break
            s = (lo + hi) / 2 if hi is not None else min(2 * s, cfg.max_strength)
            if on_step:
                on_step(m, s)
    finally:
        constraint.apply(0.0)
    ok = [m for m in steps if within_limits(m, base, cfg)]
    best = min(ok, key=lambda m: m.scores.bias, default=base)
    if best.scores.bias >= base.scores.bias:
        return MitigationResult(0.0, base, tuple(steps))
    return MitigationResult(best.strength, base, tuple(steps), steps.index(best))


def history_logger(
    conn: Any, session_id: str, model_hash: str, device: str
) -> Callable[[Measurement, float], None]:
    """An on_step that logs every strength change of the search as a loop event."""
    from edgekit.bias import store

    turn = 0

    def log_step(m: Measurement, next_strength: float) -> None:
        nonlocal turn
        if next_strength > m.strength:
            action = "raise"
        elif next_strength < m.strength:
            action = "relax"
        else:
            action = "hold"
        event = {
            "at": time.time(),
            "turn": turn,
            "measured": m.scores.bias,
            "strength_before": m.strength,
            "strength_after": next_strength,
            "action": action,
            "regenerate": False,
            "detail": m.to_dict(),
        }
        state = {"state": {"strength": next_strength, "turn": turn}}
        store.save_session(conn, session_id, model_hash, device, "mitigate", state, event)
        turn += 1

    return log_step


def require_runtime(runtime: object) -> Any:
    """The bias tools need log-probabilities, hidden states and adapters (SCORE + ADAPTERS)."""
    if not isinstance(runtime, ScoringRuntime) or not isinstance(runtime, AdapterRuntime):
        raise BiasError(
            "bias probes and the erasure adapter need a back end that scores and takes adapters",
            hint="Pass a .gguf file (it runs on llama.cpp); ONNX exports cannot take adapters.",
        )
    return runtime


def adapter_path(model_hash: str) -> Path:
    return data_dir() / "bias" / "adapters" / f"{model_hash[:16]}.gguf"


class ErasureConstraint:
    """The erasure adapter file at a scale on a runtime: 0 is the base model."""

    def __init__(self, runtime: AdapterRuntime, path: Path) -> None:
        self.runtime = runtime
        self.path = path

    def apply(self, scale: float) -> None:
        self.runtime.set_lora(self.path if scale else None, scale)


class ControlConstraint:
    """The additive control vector at a scale: kept only as the benchmark's negative control."""

    def __init__(self, runtime: AdapterRuntime, matrix: FloatArray) -> None:
        self.runtime = runtime
        self.matrix = matrix

    def apply(self, scale: float) -> None:
        self.runtime.set_control_vector(self.matrix * scale if scale else None)


def write_erasure(
    path: Path,
    weights: ModelWeights,
    directions: Directions,
    alphas: dict[int, float],
    meta: dict[str, Any],
    readers: Mapping[str, tuple[gguf.MODEL_TENSOR, ...]] = READERS,
) -> Path:
    tensors = build_adapter(weights, directions, alphas, readers)
    full = {
        **meta,
        **directions.to_meta(),
        "alphas": {str(k): v for k, v in sorted(alphas.items())},
        "method": "LEACE erasure of calibration group contrasts at the weighted blocks' readers",
    }
    return write_adapter(path, weights.architecture, tensors, full)


@dataclass(frozen=True)
class Erasure:
    adapter: Path
    scale: float
    alphas: dict[int, float]
    search: MitigationResult | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "adapter": str(self.adapter),
            "scale": self.scale,
            "alphas": {str(k): v for k, v in sorted(self.alphas.items())},
            **({"search": self.search.to_dict()} if self.search else {}),
        }


def load_or_derive(
    runtime: Any, model_hash: str, notify: Callable[[str], None] | None = None
) -> Erasure:
    """The model's calibrated adapter, or an uncalibrated one (scale 0) derived now and saved."""
    from edgekit.bias.erasure import check_adapter

    p = adapter_path(model_hash)
    if p.is_file():
        meta = check_adapter(p, runtime.info)
        alphas = {int(k): float(v) for k, v in meta.get("alphas", {}).items()}
        return Erasure(p, float(meta.get("scale", 0.0)), alphas)
    if notify:
        notify(f"deriving the erasure adapter for this model (once), saving to {p}")
    directions = derive(runtime)
    alphas = dict.fromkeys(directions.blocks, 1.0)
    weights = ModelWeights(runtime.info.path)
    write_erasure(p, weights, directions, alphas, {"model_hash": model_hash, "scale": 0.0})
    return Erasure(p, 0.0, alphas)
