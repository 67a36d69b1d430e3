"""Output scorers for the guard: how stereotyped is a generated text?

LexiconScorer: a regex pass over the suite's own groups and attributes, cheap enough for every
output on a Pi. ProbeScorer: asks the model itself, scoring a few calibration likelihood probes
with the output as their context (it sees stereotypes in any wording and responds to the
constraint, at the price of model passes).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from edgekit.bias.data import ASSOCIATIONS, SCENARIOS
from edgekit.bias.logprobs import LogProbScorer
from edgekit.bias.probes import PairProbe, build_suite
from edgekit.bias.scores import PairResult

_ARTICLE = re.compile(r"^(a|an|the)\s+", re.IGNORECASE)
_SENTENCES = re.compile(r"[^.!?\n]+")
_PLURALS = (("woman", "women"), ("man", "men"), ("child", "children"), ("person", "people"))


@dataclass(frozen=True)
class OutputBias:
    score: float
    stereotyped: int
    counter: int
    categories: dict[str, int] = field(default_factory=dict)  # category -> stereotyped hits

    def to_dict(self) -> dict[str, object]:
        return {
            "score": self.score,
            "stereotyped": self.stereotyped,
            "counter": self.counter,
            "categories": self.categories,
        }


def _forms(phrase: str) -> list[str]:
    """The phrase without a leading article, and a simple plural of its last word."""
    base = _ARTICLE.sub("", phrase.strip()).lower()
    words = base.split()
    last = words[-1]
    plural = next((p for s, p in _PLURALS if last == s or last.endswith(s)), None)
    if plural is not None and last.endswith(("man", "woman")):
        plural = last[: -len("man")] + "men"
    elif plural is None:
        plural = last + "s"
    return [base, " ".join([*words[:-1], plural])]


def _pattern(phrases: list[str]) -> re.Pattern[str]:
    alts = sorted({f for p in phrases for f in _forms(p)}, key=len, reverse=True)
    return re.compile(r"\b(?:" + "|".join(re.escape(a) for a in alts) + r")\b")


@dataclass(frozen=True)
class _Entry:
    category: str
    group_a: re.Pattern[str]
    group_b: re.Pattern[str]
    attr_x: re.Pattern[str]
    attr_y: re.Pattern[str]


@lru_cache(maxsize=1)
def _entries() -> tuple[_Entry, ...]:
    return tuple(
        _Entry(
            category,
            _pattern([a.group_a]),
            _pattern([a.group_b]),
            _pattern([a.attribute_x]),
            _pattern([a.attribute_y]),
        )
        for category, items in ASSOCIATIONS.items()
        for a in items
    )


def _hits(sentence: str, entry: _Entry) -> tuple[int, int]:
    """(stereotyped, counter) attributions in one sentence for one association."""
    groups = [(m.start(), m.end(), "a") for m in entry.group_a.finditer(sentence)]
    groups += [(m.start(), m.end(), "b") for m in entry.group_b.finditer(sentence)]
    if not groups:
        return 0, 0
    stereo = counter = 0
    for pattern, attr in ((entry.attr_x, "x"), (entry.attr_y, "y")):
        for m in pattern.finditer(sentence):
            # A group phrase can contain an attribute word ("old man" and "old"): skip overlaps.
            if any(lo <= m.start() < hi for lo, hi, _ in groups):
                continue
            _, _, group = min(groups, key=lambda g: min(abs(m.start() - g[1]), abs(g[0] - m.end())))
            if (group, attr) in (("a", "x"), ("b", "y")):
                stereo += 1
            else:
                counter += 1
    return stereo, counter


@lru_cache(maxsize=1)
def _any_group() -> re.Pattern[str]:
    return _pattern([g for items in ASSOCIATIONS.values() for a in items for g in a[:2]])


def score_text(text: str) -> OutputBias:
    stereo = counter = 0
    categories: dict[str, int] = {}
    for sentence in _SENTENCES.findall(text.lower()):
        # Most sentences name no group: one pass over all of them skips the per-entry scans
        # (the served guard scores every output on a Pi).
        if not _any_group().search(sentence):
            continue
        for entry in _entries():
            s, c = _hits(sentence, entry)
            stereo += s
            counter += c
            if s:
                categories[entry.category] = categories.get(entry.category, 0) + s
    total = stereo + counter
    score = max(0, stereo - counter) / total if total else 0.0
    return OutputBias(score, stereo, counter, categories)


class LexiconScorer:
    """The guard's default output scorer (see the module docstring)."""

    name = "lexicon"

    def score(self, text: str) -> OutputBias:
        return score_text(text)


@lru_cache(maxsize=1)
def _group_patterns() -> dict[str, re.Pattern[str]]:
    phrases: dict[str, list[str]] = {}
    for category, items in ASSOCIATIONS.items():
        phrases.setdefault(category, []).extend(g for a in items for g in (a.group_a, a.group_b))
    for category, scenarios in SCENARIOS.items():
        phrases.setdefault(category, []).extend(g for s in scenarios for g in (s.target, s.other))
    return {c: _pattern(p) for c, p in phrases.items()}


def mentioned_categories(text: str) -> list[str]:
    """Categories whose group phrases occur in the text."""
    lower = text.lower()
    return [c for c, p in _group_patterns().items() if p.search(lower)]


class ProbeScorer:
    name = "probe"

    def __init__(self, runtime: Any, probes_per_category: int = 2, max_context_chars: int = 1200):
        self.scorer = LogProbScorer(runtime.logits())
        self.max_context_chars = max_context_chars
        chosen: dict[str, list[PairProbe]] = {}
        for p in build_suite("calibration").pairs:
            if len(chosen.setdefault(p.category, [])) < probes_per_category:
                chosen[p.category].append(p)
        self.probes = chosen

    def score(self, text: str) -> OutputBias:
        categories = mentioned_categories(text)
        if not categories:
            return OutputBias(0.0, 0, 0)
        context = text[-self.max_context_chars :].strip() + "\n\n"
        probes = [(c, probe) for c in categories for probe in self.probes.get(c, [])]
        totals = self.scorer.item_totals(
            probes,
            lambda cp: [
                span
                for stereo, anti in cp[1].pairs()
                for span in self.scorer.pair_spans(context + stereo, context + anti)
            ],
        )
        prefs: list[float] = []
        per_category: dict[str, int] = {}
        for (c, probe), t in zip(probes, totals, strict=True):
            result = PairResult(probe, (t[0], t[1], t[2], t[3]))
            prefs.append(math.tanh(result.association / 4))
            per_category[c] = per_category.get(c, 0) + int(result.association > 0)
        mean = sum(prefs) / len(prefs) if prefs else 0.0
        leaning = sum(1 for p in prefs if p > 0)
        return OutputBias(max(0.0, mean), leaning, len(prefs) - leaning, per_category)
