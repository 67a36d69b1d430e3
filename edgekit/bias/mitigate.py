"""`edgekit bias --mitigate`: settle the constraint strength by feedback on calibration outputs.

The loop measures the model's own answers on the calibration probes under the current strength,
then moves the strength: up while the answers still lean toward the stereotypes, down when they
lean against them or when the constraint costs too much (perplexity on real text up more than
`max_perplexity_increase`, or disambiguated accuracy down more than `max_accuracy_drop`). Steps
double until the lean changes sign or a cost limit is hit, then bisect. The strength kept is the
measured one with the lowest calibration bias score among those within both cost limits. The
held-out split is never touched here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from statistics import fmean
from typing import Any

from edgekit.bias.control import apply_control, clear_control
from edgekit.bias.cvec_file import ControlVectorFile
from edgekit.bias.metrics import SuiteScores
from edgekit.bias.probes import ProbeSuite, build_suite
from edgekit.bias.quality import perplexity
from edgekit.bias.scoring import LogProbScorer
from edgekit.bias.suite import run_suite


@dataclass(frozen=True)
class MitigationConfig:
    start: float = 1.0
    max_strength: float = 8.0
    iterations: int = 6
    tolerance: float = 0.01  # |signed lean| below this ends the search
    max_perplexity_increase: float = 0.05
    max_accuracy_drop: float = 0.05


@dataclass(frozen=True)
class Measurement:
    strength: float
    scores: SuiteScores
    perplexity: float
    seconds: float

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
        }


@dataclass(frozen=True)
class MitigationResult:
    strength: float
    baseline: Measurement
    steps: tuple[Measurement, ...]

    @property
    def chosen(self) -> Measurement:
        return next((m for m in self.steps if m.strength == self.strength), self.baseline)

    def to_dict(self) -> dict[str, Any]:
        return {
            "strength": self.strength,
            "baseline": self.baseline.to_dict(),
            "steps": [m.to_dict() for m in self.steps],
        }


def measure(
    runtime: Any,
    scorer: LogProbScorer,
    control: ControlVectorFile,
    strength: float,
    suite: ProbeSuite,
    text: str,
    ppl_offset: int,
) -> Measurement:
    t0 = time.perf_counter()
    if strength > 0:
        apply_control(runtime.llm, control.matrix * strength)
    else:
        clear_control(runtime.llm)
    scores = run_suite(scorer, suite).scores()
    ppl = perplexity(scorer, text, offset=ppl_offset)
    return Measurement(strength, scores, ppl, time.perf_counter() - t0)


def within_limits(m: Measurement, base: Measurement, cfg: MitigationConfig) -> bool:
    return (
        m.perplexity <= base.perplexity * (1 + cfg.max_perplexity_increase)
        and m.scores.disambiguated_accuracy
        >= base.scores.disambiguated_accuracy - cfg.max_accuracy_drop
    )


def mitigate(
    runtime: Any,
    control: ControlVectorFile,
    text: str,
    config: MitigationConfig | None = None,
    on_step: Callable[[Measurement, float], None] | None = None,
    ppl_offset: int = 1024,
) -> MitigationResult:
    """Search the strength on the calibration split; `on_step(measurement, next_strength)`."""
    cfg = config or MitigationConfig()
    suite = build_suite("calibration")
    scorer = LogProbScorer(runtime.llm)
    try:
        base = measure(runtime, scorer, control, 0.0, suite, text, ppl_offset)
        if on_step:
            on_step(base, cfg.start)
        lo, hi, s = 0.0, None, cfg.start
        steps: list[Measurement] = []
        for _ in range(cfg.iterations):
            m = measure(runtime, scorer, control, s, suite, text, ppl_offset)
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
        ok = [m for m in steps if within_limits(m, base, cfg)]
        best = min(ok, key=lambda m: m.scores.bias, default=base)
        if best.scores.bias >= base.scores.bias:
            best = base
        return MitigationResult(best.strength, base, tuple(steps))
    finally:
        clear_control(runtime.llm)
        scorer.close()


def history_logger(
    conn: Any, session_id: str, model_hash: str, device: str
) -> Callable[[Measurement, float], None]:
    """An on_step that logs every strength change of the search as a loop event."""
    from edgekit.bias import history

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
        history.save_session(conn, session_id, model_hash, device, "mitigate", state, event)
        turn += 1

    return log_step
