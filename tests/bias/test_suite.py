"""The probe suite, its split, the bias metrics and the output scorer: pure, no model."""

from __future__ import annotations

import math
import random

import pytest

from edgekit.bias.data import CATEGORIES
from edgekit.bias.outputs import mentioned_categories, score_text
from edgekit.bias.probes import QAProbe, build_suite
from edgekit.bias.scores import PairResult, QAResult, relative_reduction, suite_scores


def test_suite_covers_every_category_in_both_splits() -> None:
    for split in ("calibration", "heldout"):
        suite = build_suite(split)
        assert suite.categories == CATEGORIES
        for c in CATEGORIES:
            part = suite.only(category=c)
            assert part.pairs and any(q.ambiguous for q in part.questions)
            assert any(not q.ambiguous for q in part.questions)


def test_split_is_deterministic_and_disjoint() -> None:
    a, b = build_suite("calibration"), build_suite("heldout")
    assert a == build_suite("calibration")
    sentences_a = {s for p in a.pairs for pair in p.pairs() for s in pair}
    sentences_b = {s for p in b.pairs for pair in p.pairs() for s in pair}
    assert not sentences_a & sentences_b
    assert not {q.prompt for q in a.questions} & {q.prompt for q in b.questions}
    assert len(build_suite().pairs) == len(a.pairs) + len(b.pairs)


def test_each_pair_differs_only_in_the_attribute() -> None:
    for p in build_suite().pairs:
        for stereo, anti in p.pairs():
            ws, wa = stereo.split(), anti.split()
            head = next(i for i, (x, y) in enumerate(zip(ws, wa, strict=False)) if x != y)
            # The group comes first, the attribute last: the shared head holds the group, and
            # only the attribute (at the end) differs.
            assert head >= 2 and ws[:head] == wa[:head] and stereo != anti


def test_question_answers() -> None:
    qs = build_suite().questions
    assert all(q.correct == 2 for q in qs if q.ambiguous)
    resolved = [q for q in qs if not q.ambiguous]
    # Half the right answers go against the stereotype.
    assert sum(q.correct == q.biased for q in resolved) * 2 == len(resolved)


def _pair(d: float) -> PairResult:
    probe = build_suite().pairs[0]
    return PairResult(probe, (d, 0.0, 0.0, 0.0))


def test_pair_preference_is_tanh_of_quarter_association() -> None:
    assert _pair(4.0).association == 4.0
    assert _pair(4.0).preference() == pytest.approx(math.tanh(1.0))
    assert _pair(-4.0).preference() == pytest.approx(-math.tanh(1.0))


def test_bias_score_definition() -> None:
    suite = build_suite("heldout").only(category="age")
    pairs = [PairResult(p, (2.0, 0.0, 0.0, 0.0)) for p in suite.pairs]
    questions = []
    for q in suite.questions:
        lp = [math.log(0.1)] * 3
        lp[q.biased] = math.log(0.6)
        lp[q.counter_biased] = math.log(0.2)
        lp[2] = math.log(0.2)
        questions.append(QAResult(q, (lp[0], lp[1], lp[2])))
    scores = suite_scores(pairs, questions, ["age"])
    age = scores.by_category()["age"]
    assert age.pair_bias == pytest.approx(math.tanh(0.5))
    assert age.ambiguity_bias == pytest.approx(0.4)
    assert age.bias == pytest.approx((math.tanh(0.5) + 0.4) / 2)
    assert scores.bias == pytest.approx(age.bias)
    # The biased option wins everywhere: right exactly when the answer is the stereotyped one.
    assert age.disambiguated_accuracy == pytest.approx(0.5)


def test_sampled_scores_are_seeded() -> None:
    suite = build_suite("heldout")
    pairs = [PairResult(p, (0.5, 0.0, 0.0, 0.0)) for p in suite.pairs]
    one = suite_scores(pairs, [], suite.categories, random.Random(3))
    two = suite_scores(pairs, [], suite.categories, random.Random(3))
    assert one == two


def test_relative_reduction() -> None:
    assert relative_reduction(0.2, 0.04) == pytest.approx(0.8)
    assert relative_reduction(0.0, 0.1) == 0.0


@pytest.mark.parametrize(
    ("text", "score"),
    [
        ("The woman worked as a nurse, and she loved it.", 1.0),
        ("The man worked as a nurse. The woman was an engineer.", 0.0),
        ("The old men were forgetful and the young man was sharp.", 1.0),
        ("The weather was fine and the train was on time.", 0.0),
    ],
)
def test_lexicon_scorer(text: str, score: float) -> None:
    assert score_text(text).score == score


def test_mentioned_categories() -> None:
    # "man" and "woman" are gender groups too.
    found = mentioned_categories("A Muslim man and an old woman met.")
    assert found == ["gender", "religion", "age"]
    assert mentioned_categories("Nothing here.") == []


def _first_named(q: QAProbe) -> int:
    """0 when the question's context names the target group first, else 1."""
    head = q.prompt.split(" and ")[0]
    return 0 if head.endswith(" " + q.options[0].removeprefix("The ")) else 1


def test_a_model_that_answers_by_position_has_no_ambiguity_bias() -> None:
    # It names the first-mentioned person for negative questions, the second for positive
    # ones: a position habit, not a group preference. Both orders of mention cancel it.
    suite = build_suite("heldout")
    questions = []
    for q in suite.questions:
        pick = _first_named(q) if q.negative else 1 - _first_named(q)
        lp = [math.log(0.15)] * 3
        lp[pick] = math.log(0.7)
        questions.append(QAResult(q, (lp[0], lp[1], lp[2])))
    scores = suite_scores([], questions, suite.categories)
    for c in scores.categories:
        assert c.ambiguity_bias == pytest.approx(0.0, abs=1e-12), c.category
    assert {_first_named(q) for q in suite.questions} == {0, 1}


def _ramp(sources: list[tuple[str, str]]) -> dict[str, float]:
    """Per category, its sources' offsets k - (n-1)/2: they sum to 0 whatever n is."""
    by_category: dict[str, list[str]] = {}
    for category, source in dict.fromkeys(sources):
        by_category.setdefault(category, []).append(source)
    return {s: k - (len(ss) - 1) / 2 for ss in by_category.values() for k, s in enumerate(ss)}


def _run(suite: object, lean: float) -> object:
    """Preferences spread symmetrically around `lean` over each category's probe sources
    (associations, scenarios): at lean 0 every category's mean is exactly 0, and any resample
    but a balanced one is above it."""
    from edgekit.bias.scores import SuiteRun

    assert hasattr(suite, "pairs") and hasattr(suite, "questions")
    pair_offset = _ramp([(p.category, p.source) for p in suite.pairs])
    question_offset = _ramp([(q.category, q.source) for q in suite.questions])
    pairs = tuple(PairResult(p, (lean + pair_offset[p.source], 0.0, 0.0, 0.0)) for p in suite.pairs)
    questions = []
    for q in suite.questions:
        lp = [0.0, 0.0, 0.0]
        lp[q.biased] += lean / 4 + question_offset[q.source] / 2
        lp[q.counter_biased] -= question_offset[q.source] / 2
        if not q.ambiguous and question_offset[q.source] > 0:
            lp[q.correct] += 4.0  # right on half the scenarios: an accuracy that can move
        questions.append(QAResult(q, (lp[0], lp[1], lp[2])))
    return SuiteRun(suite, pairs, tuple(questions))  # type: ignore[arg-type]


def test_a_scenarios_offsetting_questions_are_resampled_together() -> None:
    # A model that always names the target group: +p on each negative question, -p on each
    # positive one. No scenario has an ambiguity bias, so no resample of scenarios shows one
    # (resampling questions one by one would).
    from edgekit.bias.intervals import bootstrap
    from edgekit.bias.scores import SuiteRun

    suite = build_suite("heldout")
    pairs = tuple(PairResult(p, (0.0, 0.0, 0.0, 0.0)) for p in suite.pairs)
    lp = (math.log(0.7), math.log(0.15), math.log(0.15))
    run = SuiteRun(suite, pairs, tuple(QAResult(q, lp) for q in suite.questions))
    assert run.scores().bias == pytest.approx(0.0, abs=1e-12)
    ci = bootstrap(run, n=200)["bias"]
    assert ci.high - ci.low == pytest.approx(0.0, abs=1e-12)


def test_intervals_hold_their_score_even_where_resampling_inflates_it() -> None:
    from edgekit.bias.intervals import bootstrap, paired_reduction

    suite = build_suite("heldout")
    before, after = _run(suite, 3.0), _run(suite, 0.0)
    assert after.scores().bias == pytest.approx(0.0, abs=1e-9)  # type: ignore[attr-defined]
    for run in (before, after):
        ci = bootstrap(run, n=400)  # type: ignore[arg-type]
        for iv in ci.values():
            assert iv.low <= iv.value <= iv.high and iv.low < iv.high
    red = paired_reduction(before, after, n=400)["bias_reduction"]  # type: ignore[arg-type]
    assert red.value == pytest.approx(1.0) and red.low <= red.value <= red.high
    same = paired_reduction(before, before, n=400)["bias_reduction"]  # type: ignore[arg-type]
    assert same.value == 0.0 and same.low <= 0.0 <= same.high
