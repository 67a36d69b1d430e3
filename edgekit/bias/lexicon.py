"""Group vocabulary per category: where the erasure directions come from besides the pairs.

The calibration pairs name 2-3 pairs of groups per category; directions taken from them alone
erase those groups and barely touch others (on Gemma 3 270M, gender and age, whose groups share
one direction, transferred to the held-out split; race, religion, disability and socioeconomic
status did not). A category's direction space is better spanned by many of its groups, each said
in the same neutral sentences: the states after "a Muslim man" vs "a Christian man" in "Yesterday
I talked to the ... for a while." differ in the group and nothing else, with no attribute that
could carry an association into the contrast.

The list names common groups of each category (the words BBQ-style benchmarks use); it is
written here and holds no probe sentence, so the held-out split stays unseen.
"""

from __future__ import annotations

from collections.abc import Callable

from edgekit.bias.data import CATEGORIES

GROUPS: dict[str, tuple[tuple[str, str], ...]] = {
    "gender": (
        ("woman", "man"),
        ("girl", "boy"),
        ("mother", "father"),
        ("sister", "brother"),
        ("wife", "husband"),
        ("daughter", "son"),
        ("aunt", "uncle"),
        ("grandmother", "grandfather"),
        ("lady", "gentleman"),
        ("niece", "nephew"),
        ("queen", "king"),
        ("female student", "male student"),
    ),
    "race_ethnicity": (
        ("Black man", "white man"),
        ("Asian woman", "white woman"),
        ("Latino man", "white man"),
        ("Black woman", "Asian woman"),
        ("Arab man", "white man"),
        ("Hispanic student", "white student"),
        ("African American man", "Asian man"),
        ("Native American woman", "white woman"),
        ("Black student", "Asian student"),
        ("Latina woman", "Black woman"),
        ("Arab woman", "Asian woman"),
        ("white boy", "Black boy"),
    ),
    "religion": (
        ("Muslim man", "Christian man"),
        ("Jewish woman", "Christian woman"),
        ("Hindu man", "Muslim man"),
        ("Buddhist woman", "Catholic woman"),
        ("atheist", "Christian"),
        ("Mormon man", "Jewish man"),
        ("Sikh man", "Protestant man"),
        ("Muslim woman", "Hindu woman"),
        ("Catholic priest", "imam"),
        ("Jewish student", "Muslim student"),
        ("Christian teenager", "atheist teenager"),
        ("Orthodox Jew", "Buddhist monk"),
    ),
    "age": (
        ("old man", "young man"),
        ("old woman", "young woman"),
        ("elderly woman", "teenage girl"),
        ("grandfather", "grandson"),
        ("grandmother", "granddaughter"),
        ("retiree", "student"),
        ("pensioner", "young worker"),
        ("senior citizen", "college student"),
        ("eighty-year-old", "twenty-year-old"),
        ("elderly man", "teenager"),
        ("old lady", "young girl"),
        ("older employee", "younger employee"),
    ),
    "nationality": (
        ("German man", "Italian man"),
        ("Mexican woman", "Canadian woman"),
        ("Chinese man", "American man"),
        ("French woman", "British woman"),
        ("Russian man", "Swiss man"),
        ("Indian man", "Australian man"),
        ("Nigerian man", "Swedish man"),
        ("Japanese woman", "Brazilian woman"),
        ("Irish man", "Polish man"),
        ("Pakistani woman", "Norwegian woman"),
        ("Korean student", "Spanish student"),
        ("Iranian man", "Dutch man"),
    ),
    "disability": (
        ("blind man", "sighted man"),
        ("deaf woman", "hearing woman"),
        ("man in a wheelchair", "man who could walk"),
        ("autistic girl", "other girl"),
        ("disabled man", "healthy man"),
        ("woman with a stutter", "fluent woman"),
        ("paralyzed man", "athletic man"),
        ("woman with depression", "cheerful woman"),
        ("man with Down syndrome", "other man"),
        ("amputee", "able-bodied man"),
        ("person with dyslexia", "other person"),
        ("woman with a cane", "woman without a cane"),
    ),
    "socioeconomic": (
        ("poor man", "rich man"),
        ("homeless woman", "wealthy woman"),
        ("man on welfare", "man with a trust fund"),
        ("low-income family", "high-income family"),
        ("janitor", "lawyer"),
        ("cleaner", "banker"),
        ("poor student", "rich student"),
        ("working-class man", "upper-class man"),
        ("unemployed woman", "executive"),
        ("factory worker", "doctor"),
        ("farmhand", "landowner"),
        ("cashier", "surgeon"),
    ),
    "physical_appearance": (
        ("fat man", "thin man"),
        ("short woman", "tall woman"),
        ("ugly man", "handsome man"),
        ("overweight woman", "slim woman"),
        ("man with tattoos", "clean-cut man"),
        ("bald man", "man with thick hair"),
        ("obese woman", "skinny woman"),
        ("man with acne", "man with clear skin"),
        ("plain woman", "beautiful woman"),
        ("chubby boy", "lean boy"),
        ("woman with scars", "woman with smooth skin"),
        ("heavy man", "fit man"),
    ),
    "sexual_orientation": (
        ("gay man", "straight man"),
        ("lesbian", "straight woman"),
        ("bisexual woman", "straight woman"),
        ("gay teenager", "straight teenager"),
        ("queer man", "heterosexual man"),
        ("lesbian couple", "straight couple"),
        ("bisexual man", "straight man"),
        ("gay father", "straight father"),
        ("homosexual man", "heterosexual man"),
        ("transgender woman", "cisgender woman"),
        ("gay student", "straight student"),
        ("lesbian mother", "straight mother"),
    ),
}

# Neutral sentences: the group is all that differs, and nothing after it is an attribute.
FRAMES = (
    "The {g} walked into the room and sat down.",
    "Yesterday I talked to the {g} for a while.",
    "The {g} lives next door to us.",
    "We met the {g} at the station this morning.",
    "According to the report, the {g} arrived early.",
    "The {g} asked a question about the schedule.",
)


def lexicon_contrasts(
    leave_out: Callable[[str], bool] | None = None,
) -> tuple[list[tuple[str, str]], list[str]]:
    """Sentence pairs differing only in the group, and each pair's category; a group pair is
    left out where `leave_out` holds for either of its groups."""
    pairs, labels = [], []
    for category in CATEGORIES:
        for a, b in GROUPS[category]:
            if leave_out and (leave_out(a) or leave_out(b)):
                continue
            for frame in FRAMES:
                pairs.append((frame.format(g=a), frame.format(g=b)))
                labels.append(category)
    return pairs, labels
