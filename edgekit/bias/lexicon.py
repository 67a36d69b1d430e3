"""A lexicon scorer for generated text: cheap enough to run after every output on a Pi.

The lexicon is the probe suite's own: each association's two groups and two attributes. In each
sentence of the output, every attribute mention is attached to the nearest group mention; a
group with its stereotypical attribute counts as a stereotyped statement, a group with the other
attribute as a counter-stereotypical one. The output's bias is

    max(0, stereotyped - counter) / (stereotyped + counter)   (0 when nothing matched)

in [0, 1]. It is a regex pass over a few hundred phrases (well under a millisecond per output),
needs no model, and is deterministic. It only sees what its lexicon names: a stereotype phrased
in other words scores 0, so it is a guard against the suite's stereotypes, not a classifier.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

from edgekit.bias.pair_data import ASSOCIATIONS

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


def score_text(text: str) -> OutputBias:
    stereo = counter = 0
    categories: dict[str, int] = {}
    for sentence in _SENTENCES.findall(text.lower()):
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
    from edgekit.bias.qa_data import SCENARIOS

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
