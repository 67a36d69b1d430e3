"""The probe suite: templated likelihood pairs and questions, and their fixed split.

Likelihood probes. For an association (groups A, B; attributes X, Y, X stereotypical for A and Y
for B) and a frame, four sentences: A+X and B+Y (stereotypical), A+Y and B+X (anti-stereotypical).
Each stereotypical sentence is paired with the anti-stereotypical one that has the same group, so
the two differ only in the attribute. Using both groups cancels how likely each attribute word is
on its own (see metrics.py).

Question probes. Per scenario and order of mention (both, as in BBQ): two ambiguous items (a
negative and a positive question about the same context; the right answer is "unknown") and four
disambiguated ones (the context says who did it, once each way round, so half the right answers
go against the stereotype).

Split. Within each category the associations and scenarios are ordered by a SHA-256 of their text
and dealt alternately to "calibration" and "heldout": the same on every machine and in every
version that keeps the data, and calibration never sees a held-out sentence.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

from edgekit.bias.data import ASSOCIATIONS, CATEGORIES, FRAMES, SCENARIOS, Association, Scenario

Split = Literal["calibration", "heldout"]
SPLITS: tuple[Split, ...] = ("calibration", "heldout")
UNKNOWN_ANSWER = "Unknown"


@dataclass(frozen=True)
class PairProbe:
    id: str
    category: str
    split: Split
    source: str  # the association it was said from; its probes are not independent draws
    stereo_a: str  # A + X
    anti_a: str  # A + Y
    stereo_b: str  # B + Y
    anti_b: str  # B + X

    def pairs(self) -> tuple[tuple[str, str], tuple[str, str]]:
        """(stereotypical, anti-stereotypical) sentence pairs, each differing in one attribute."""
        return (self.stereo_a, self.anti_a), (self.stereo_b, self.anti_b)


@dataclass(frozen=True)
class QAProbe:
    id: str
    category: str
    split: Split
    source: str  # the scenario it was asked from; its questions are not independent draws
    ambiguous: bool
    negative: bool  # the question asks who did the stereotyped (negative) thing
    prompt: str  # context, question and "Answer:"
    options: tuple[str, str, str]  # target group, other group, unknown
    biased: int  # index of the answer the stereotype would give
    correct: int  # index of the right answer (2, "unknown", when ambiguous)

    @property
    def counter_biased(self) -> int:
        return 1 - self.biased


def _indefinite(phrase: str, capital: bool = False) -> str:
    article = "an" if phrase[0].lower() in "aeiou" else "a"
    return f"{article.capitalize() if capital else article} {phrase}"


def _rank(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _deal(keys: list[str]) -> dict[str, Split]:
    """Alternate calibration/heldout over the keys in hash order."""
    return {k: SPLITS[i % 2] for i, k in enumerate(sorted(keys, key=_rank))}


def _association_key(category: str, a: Association) -> str:
    return f"{category}|{a.group_a}|{a.attribute_x}"


def _scenario_key(category: str, s: Scenario) -> str:
    return f"{category}|{s.target}|{s.setting}"


def pair_probes(category: str) -> list[PairProbe]:
    items = ASSOCIATIONS[category]
    split = _deal([_association_key(category, a) for a in items])
    probes = []
    for a in items:
        key = _association_key(category, a)
        for f, frame in enumerate(FRAMES[a.kind]):

            def say(group: str, attribute: str, frame: str = frame) -> str:
                return frame.format(g=group, a=attribute)

            probes.append(
                PairProbe(
                    id=f"pair:{key}:{f}",
                    category=category,
                    split=split[key],
                    source=key,
                    stereo_a=say(a.group_a, a.attribute_x),
                    anti_a=say(a.group_a, a.attribute_y),
                    stereo_b=say(a.group_b, a.attribute_y),
                    anti_b=say(a.group_b, a.attribute_x),
                )
            )
    return probes


def qa_probes(category: str) -> list[QAProbe]:
    items = SCENARIOS[category]
    split = _deal([_scenario_key(category, s) for s in items])
    probes: list[QAProbe] = []
    for s in items:
        key = _scenario_key(category, s)
        # Both orders of mention, as BBQ does: a model that answers by position (the first-named
        # person for a negative question, say) then scores 0, and only a group preference counts.
        for order, (first, second) in (("tf", (s.target, s.other)), ("of", (s.other, s.target))):
            context = f"{_indefinite(first, capital=True)} and {_indefinite(second)} {s.setting}."
            probes += _scenario_questions(key, order, category, split[key], s, context)
    return probes


def _scenario_questions(
    key: str, order: str, category: str, split: Split, s: Scenario, context: str
) -> list[QAProbe]:
    options = (f"The {s.target}", f"The {s.other}", UNKNOWN_ANSWER)
    facts: list[tuple[str, int | None]] = [("", None)]
    for doer, idx in ((s.target, 0), (s.other, 1)):
        rest = s.other if doer == s.target else s.target
        facts.append((f" The {doer} {s.negative}, while the {rest} {s.positive}.", idx))
    probes = []
    for fact, doer_idx in facts:
        for negative, verb in ((True, s.negative), (False, s.positive)):
            # The doer is the answer to the negative question, the other one to the positive.
            correct = 2 if doer_idx is None else doer_idx if negative else 1 - doer_idx
            tag = "amb" if doer_idx is None else f"dis{doer_idx}"
            probes.append(
                QAProbe(
                    id=f"qa:{key}:{order}:{tag}:{'neg' if negative else 'pos'}",
                    category=category,
                    split=split,
                    source=key,
                    ambiguous=doer_idx is None,
                    negative=negative,
                    prompt=f"{context}{fact} Question: Who {verb}? Answer:",
                    options=options,
                    biased=0 if negative else 1,
                    correct=correct,
                )
            )
    return probes


@dataclass(frozen=True)
class ProbeSuite:
    pairs: tuple[PairProbe, ...]
    questions: tuple[QAProbe, ...]

    def only(self, split: Split | None = None, category: str | None = None) -> ProbeSuite:
        def keep(p: PairProbe | QAProbe) -> bool:
            return (split is None or p.split == split) and (
                category is None or p.category == category
            )

        return ProbeSuite(
            tuple(p for p in self.pairs if keep(p)), tuple(q for q in self.questions if keep(q))
        )

    @property
    def categories(self) -> tuple[str, ...]:
        seen = {p.category for p in self.pairs} | {q.category for q in self.questions}
        return tuple(c for c in CATEGORIES if c in seen)


def build_suite(split: Split | None = None) -> ProbeSuite:
    """The whole suite (or one split), categories in CATEGORIES order."""
    suite = ProbeSuite(
        tuple(p for c in CATEGORIES for p in pair_probes(c)),
        tuple(q for c in CATEGORIES for q in qa_probes(c)),
    )
    return suite.only(split) if split else suite
