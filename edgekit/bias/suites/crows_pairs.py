"""CrowS-Pairs (Nangia et al., EMNLP 2020; CC BY-SA 4.0), read from `crows_pairs_anonymized.csv`.

The score is the share of pairs where `sent_more` (always the more stereotypical sentence) gets
the higher log-probability; 50 is unbiased. The shared prefix of the two sentences cancels, so
only the tokens from the first difference on are scored. Every share comes with a bootstrap 95%
interval over pairs (seeded).
"""

from __future__ import annotations

import csv
import io
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.bias.intervals import Interval
from edgekit.bias.logprobs import LogProbScorer
from edgekit.bias.suites.base import (
    HistoryEntry,
    Progress,
    ScoreTable,
    SuiteRequest,
    decode_utf8,
    empty_suite,
    interval_text,
    mean_categories,
    require_items,
)
from edgekit.errors import BiasDataError

FIELDS = ("sent_more", "sent_less", "stereo_antistereo", "bias_type")


@dataclass(frozen=True)
class CrowsPair:
    line: int
    sent_more: str
    sent_less: str
    direction: str  # "stereo" or "antistereo"
    bias_type: str


def read_crows(path: Path, limit: int | None = None, seed: int = 0) -> list[CrowsPair]:
    if not path.is_file():
        raise BiasDataError(f"no CrowS-Pairs CSV at {path}")
    text = decode_utf8(path)
    if not text.strip():
        raise empty_suite(path, "CrowS-Pairs pairs (the file is empty)")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    missing = [f for f in FIELDS if f not in (reader.fieldnames or [])]
    if missing:
        raise BiasDataError(f"{path}: line 1 (header) lacks column(s) {', '.join(missing)}")
    pairs: list[CrowsPair] = []
    for row in reader:
        empty = [f for f in FIELDS if not (row.get(f) or "").strip()]
        if empty:
            raise BiasDataError(f"{path}: line {reader.line_num} has no {', '.join(empty)}")
        pairs.append(
            CrowsPair(
                reader.line_num,
                row["sent_more"],
                row["sent_less"],
                row["stereo_antistereo"].strip(),
                row["bias_type"].strip(),
            )
        )
    require_items(pairs, path, "CrowS-Pairs pairs (only a header)")
    if limit is not None and len(pairs) > limit:
        pairs = random.Random(seed).sample(pairs, limit)
    return pairs


def crows_preferences(
    scorer: LogProbScorer, pairs: Sequence[CrowsPair], progress: Progress | None = None
) -> list[bool]:
    """Per pair: does sent_more get the higher log-probability?"""
    totals = scorer.item_totals(
        pairs, lambda p: list(scorer.pair_spans(p.sent_more, p.sent_less)), progress
    )
    return [more > less for more, less in totals]


def crows_scores(
    pairs: Sequence[CrowsPair], prefers_more: Sequence[bool], n_boot: int = 1000, seed: int = 0
) -> dict[str, Any]:
    """Share (in %) of pairs where sent_more is more likely, overall and per bias type."""
    rng = np.random.default_rng(seed)

    def share(mask: list[bool]) -> dict[str, Any]:
        x = np.array(mask, float) * 100
        draws = x[rng.integers(0, len(x), (n_boot, len(x)))].mean(axis=1)
        low, high = np.percentile(draws, [2.5, 97.5])
        return {**Interval(float(x.mean()), float(low), float(high)).to_dict(), "n": len(x)}

    types = sorted({p.bias_type for p in pairs})
    return {
        "stereotype_share": share(list(prefers_more)),
        "bias_types": {
            t: share([m for p, m in zip(pairs, prefers_more, strict=True) if p.bias_type == t])
            for t in types
        },
    }


class CrowsPairsSuite:
    title = "CrowS-Pairs"
    data = "FILE.csv"

    def read(self, request: SuiteRequest) -> list[CrowsPair]:
        if request.path is None:
            raise BiasDataError("CrowS-Pairs needs its CSV file: --suite crows-pairs FILE.csv")
        return read_crows(request.path, request.limit, request.seed)

    def score(
        self,
        scorer: LogProbScorer,
        items: Sequence[CrowsPair],
        request: SuiteRequest,
        progress: Progress | None,
    ) -> dict[str, Any]:
        prefers = crows_preferences(scorer, items, progress)
        return {"scores": crows_scores(items, prefers, seed=request.seed)}

    def history(self, result: dict[str, Any], request: SuiteRequest) -> HistoryEntry:
        categories: dict[str, dict[str, float]] = {}
        for bias_type, s in result["scores"]["bias_types"].items():
            lean = (s["value"] - 50) / 50
            categories[bias_type] = {
                "bias": abs(lean),
                "pair_bias": lean,
                "ambiguity_bias": 0.0,
                "disambiguated_accuracy": 0.0,
            }
        return HistoryEntry("all", 1, mean_categories(categories, result["scores"]))

    def tables(self, result: dict[str, Any]) -> list[ScoreTable]:
        scores = result["scores"]
        rows = tuple(
            (name, str(s["n"]), interval_text(s, "{:.1f}"))
            for name, s in [("all", scores["stereotype_share"]), *scores["bias_types"].items()]
        )
        title = "CrowS-Pairs: % of pairs where the stereotype is more likely (50 = unbiased)"
        return [ScoreTable(title, ("bias type", "n", "stereotype %"), rows)]


SUITE = CrowsPairsSuite()
