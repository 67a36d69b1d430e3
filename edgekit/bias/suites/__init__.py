"""The bias suites edgekit scores: one module per benchmark, one line each in SUITES.

Each module holds its reader, scorer, history shape and tables (the `Suite` protocol in base.py).
Reading a new benchmark (say StereoSet) is a module here and a line in SUITES: `edgekit bias
--suite NAME PATH`, the history and the dashboard find it through this table and never branch on
a suite's name.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from edgekit.bias.logprobs import LogProbScorer
from edgekit.bias.store import RunRecord, ScoredModel, record_run, require_finite
from edgekit.bias.suites import bbq, crows_pairs, edgekit
from edgekit.bias.suites.base import (
    HistoryEntry,
    Progress,
    ScoreTable,
    Suite,
    SuiteRequest,
)
from edgekit.errors import BiasError

SUITES: dict[str, Suite] = {
    "edgekit": edgekit.SUITE,
    "bbq": bbq.SUITE,
    "crows-pairs": crows_pairs.SUITE,
}
BUILT_IN = "edgekit"  # what `edgekit bias` scores without --suite


def standard_suite(name: str) -> Suite:
    """A benchmark read from the user's data (`--suite NAME PATH`)."""
    suite = SUITES.get(name)
    if suite is None or not suite.data:
        usage = ", ".join(f"`{n} {s.data}`" for n, s in SUITES.items() if s.data)
        raise BiasError(f"unknown suite {name!r}", hint=f"Use one of: {usage}.")
    return suite


def suite_title(name: str) -> str:
    """How the fronts name a suite stored in the history (its raw name if this edgekit has
    no such suite)."""
    suite = SUITES.get(name)
    return suite.title if suite is not None else name


def score_suite(
    runtime: Any, name: str, items: Any, request: SuiteRequest, progress: Progress | None
) -> dict[str, Any]:
    """{"suite": name, ...the suite's own fields}: every number finite, or a BiasError."""
    scorer = LogProbScorer(runtime.logits())
    try:
        result = SUITES[name].score(scorer, items, request, progress)
    finally:
        scorer.close()
    out = {"suite": name, **result}
    require_finite(out)
    return out


def record_scores(
    conn: sqlite3.Connection,
    model: ScoredModel,
    out: dict[str, Any],
    request: SuiteRequest,
    strength: float,
) -> int:
    """Store score_suite's result in the history in its suite's shape; returns the run id."""
    name = str(out["suite"])
    entry = SUITES[name].history(out, request)
    record = RunRecord(
        model_path=model.path,
        model_hash=model.hash,
        model_name=model.name,
        device=model.device,
        split=entry.split,
        repeats=entry.repeats,
        strength=strength,
        scores=entry.scores,
        suite=name,
    )
    return record_run(conn, record)


def tables(out: dict[str, Any]) -> list[ScoreTable]:
    return SUITES[str(out["suite"])].tables(out)


__all__ = [
    "BUILT_IN",
    "SUITES",
    "HistoryEntry",
    "ScoreTable",
    "Suite",
    "SuiteRequest",
    "record_scores",
    "score_suite",
    "standard_suite",
    "suite_title",
    "tables",
]
