"""The group lexicon the erasure directions come from: pure, no model."""

from __future__ import annotations

from collections import Counter

from edgekit.bias.data import CATEGORIES
from edgekit.bias.lexicon import FRAMES, GROUPS, NAMES, lexicon_contrasts, people, say
from edgekit.bias.probes import build_suite


def test_every_category_has_groups_in_every_frame() -> None:
    pairs, labels = lexicon_contrasts()
    assert set(GROUPS) == set(CATEGORIES)
    assert Counter(labels) == {c: len(people(c)) * len(FRAMES) for c in CATEGORIES}
    assert len(pairs) == len(labels)
    assert set(NAMES) <= set(CATEGORIES)


def test_groups_take_the_article_and_names_none() -> None:
    frame = FRAMES[0]
    assert say(frame, "the woman").startswith("The woman ")
    assert say(frame, "Mary").startswith("Mary ")
    assert ("woman", "man", "the ") in people("gender")
    assert ("Mary", "John", "") in people("gender")


def _bare(said: str) -> str:
    return said[4:] if said.lower().startswith("the ") else said


def _groups(a: str, b: str) -> tuple[str, str]:
    """The groups (or names) said in a pair, found from the one frame both sentences fill."""
    for frame in FRAMES:
        head, tail = frame.split("{g}")
        if all(s.lower().startswith(head.lower()) and s.endswith(tail) for s in (a, b)):
            ga, gb = (_bare(s[len(head) : len(s) - len(tail)]) for s in (a, b))
            return ga, gb
    raise AssertionError(f"no frame fits {a!r} / {b!r}")


def test_each_pair_differs_only_in_the_group() -> None:
    for (a, b), category in zip(*lexicon_contrasts(), strict=True):
        ga, gb = _groups(a, b)
        assert (ga, gb) in GROUPS[category] + NAMES.get(category, ()) and ga != gb


def test_no_lexicon_sentence_is_a_probe_sentence() -> None:
    suite = build_suite()
    probe_text = {s for p in suite.pairs for pair in p.pairs() for s in pair}
    probe_text |= {q.prompt for q in suite.questions}
    words = {s for pair in lexicon_contrasts()[0] for s in pair}
    assert not words & probe_text


def test_the_benchmarks_unseen_lexicon_never_names_a_word_of_the_held_out_split() -> None:
    from benchmarks.erasure_sites import lexicon_without

    heldout = build_suite("heldout")
    pairs, labels = lexicon_without(heldout)
    words = set(
        " ".join(
            [s for p in heldout.pairs for pair in p.pairs() for s in pair]
            + [f"{q.prompt} {' '.join(q.options)}" for q in heldout.questions]
        )
        .lower()
        .replace(".", " ")
        .replace("?", " ")
        .replace(",", " ")
        .split()
    )
    assert 0 < len(pairs) < len(lexicon_contrasts()[0]) and len(pairs) == len(labels)
    for a, b in pairs:
        for group in _groups(a, b):
            assert not set(group.lower().split()) & words, group
