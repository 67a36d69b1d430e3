"""`edgekit bias --mitigate`: calibrate the erasure adapter, then judge it on the held-out split.

The adapter's directions, blocks and rank are chosen on the calibration split only (out of fold,
edgekit.bias.calibrate); the held-out probes, which none of that saw, are scored with the base
model and with the adapter at the chosen scale, and the change comes with a paired bootstrap
interval. Every step of the search is logged to the history as a loop session ("mitigate").
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from edgekit.bias.calibrate import ErasureSearch, calibrate_erasure, rank_steps
from edgekit.bias.controller import (
    Erasure,
    ErasureConstraint,
    Measurement,
    MitigationConfig,
    history_logger,
)
from edgekit.bias.intervals import paired_reduction
from edgekit.bias.logprobs import LogProbScorer
from edgekit.bias.perplexity import reference_text
from edgekit.bias.probes import build_suite
from edgekit.bias.scores import SuiteScores, run_suite
from edgekit.bias.store import ScoredModel, require_finite
from edgekit.bias.suites import BUILT_IN, SuiteRequest, record_scores
from edgekit.bias.suites.base import Progress
from edgekit.bias.suites.bbq import BBQItem
from edgekit.errors import ReferenceTextError

StepHook = Callable[[Measurement, float], None]


def _quiet(label: str) -> Progress | None:
    return None


def _silent(message: str) -> None:
    pass


@dataclass(frozen=True)
class MitigationRequest:
    iterations: int = 3  # ranks tried per block set
    bands: int = 3  # block sets tried: all blocks, then the last (bands-1)/bands, ...
    bbq: tuple[BBQItem, ...] = ()  # BBQ items a candidate must not make more biased


@dataclass(frozen=True)
class MitigationHooks:
    """What a front sees of the work: messages, each search step, progress per stage."""

    say: Callable[[str], None] = _silent
    on_step: StepHook | None = None
    progress: Callable[[str], Progress | None] = field(default=_quiet)


@dataclass(frozen=True)
class Mitigation:
    erasure: Erasure
    before: SuiteScores  # held-out, base model
    after: SuiteScores  # held-out, adapter at erasure.scale
    change: dict[str, Any]  # paired_reduction's intervals

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.erasure.to_dict(),
            "heldout_before": self.before.to_dict(),
            "heldout_after": self.after.to_dict(),
            "heldout_change": self.change,
        }


def mitigate(
    runtime: Any,
    model: ScoredModel,
    request: MitigationRequest,
    hooks: MitigationHooks,
    conn: sqlite3.Connection | None = None,
) -> Mitigation:
    ref = reference_text()
    if ref is None:
        raise ReferenceTextError(
            "no reference text for perplexity (looked in /usr/share/common-licenses)",
            hint="Install the base-files package, which ships the license texts.",
        )
    # The base model, then one rank per block set where the largest fits; a rank out of limits
    # adds one, and the bar waits at its last step until the search ends.
    planned = 1 + request.bands
    search_bar = hooks.progress("erasure search (candidates measured)")
    on_step = _counted(_logged(hooks.on_step, conn, model), search_bar, planned)
    hooks.say(
        "deriving group directions and the erasure adapter from the calibration split and lexicon"
    )
    erasure = calibrate_erasure(
        runtime,
        model.hash,
        ref[1],
        ErasureSearch(
            MitigationConfig(ranks=rank_steps(request.iterations)), request.bands, bbq=request.bbq
        ),
        on_step=on_step,
        progress=hooks.progress("group directions (sentences read)"),
    )
    if search_bar:
        search_bar(planned, planned)
    heldout = build_suite("heldout")
    constraint = ErasureConstraint(runtime, erasure.adapter)
    scorer = LogProbScorer(runtime.logits())
    try:
        constraint.apply(0.0)
        before = run_suite(scorer, heldout, hooks.progress("held-out, base model"))
        constraint.apply(erasure.scale)
        after = run_suite(scorer, heldout, hooks.progress("held-out, erasure adapter"))
    finally:
        constraint.apply(0.0)
        scorer.close()
    change = {k: v.to_dict() for k, v in paired_reduction(before, after).items()}
    result = Mitigation(erasure, before.scores(), after.scores(), change)
    require_finite(result.to_dict())
    return result


def _logged(
    on_step: StepHook | None, conn: sqlite3.Connection | None, model: ScoredModel
) -> StepHook | None:
    """The front's on_step, and each step logged as a loop event when there is a history."""
    if conn is None:
        return on_step
    log = history_logger(conn, f"mitigate-{model.hash[:8]}", model.hash, model.device)

    def both(m: Measurement, next_scale: float) -> None:
        if on_step is not None:
            on_step(m, next_scale)
        log(m, next_scale)

    return both


def _counted(on_step: StepHook | None, bar: Progress | None, planned: int) -> StepHook:
    """on_step, and the search's progress moved one measurement on."""
    done = 0

    def step(m: Measurement, next_scale: float) -> None:
        nonlocal done
        done += 1
        if bar:
            bar(min(done, planned - 1), planned)
        if on_step is not None:
            on_step(m, next_scale)

    return step


def record_mitigation(
    conn: sqlite3.Connection, model: ScoredModel, result: Mitigation
) -> dict[str, int]:
    """The held-out scores before and after, as two runs of edgekit's suite; their run ids."""
    request = SuiteRequest(split="heldout")
    ids = {}
    for key, scores, strength in (
        ("heldout_before", result.before, 0.0),
        ("heldout_after", result.after, result.erasure.scale),
    ):
        out = {"suite": BUILT_IN, "split": "heldout", "scores": scores.to_dict()}
        ids[f"{key}_run_id"] = record_scores(conn, model, out, request, strength)
    return ids
