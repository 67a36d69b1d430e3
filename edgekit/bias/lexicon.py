"""Group vocabulary per category: where the erasure directions come from besides the pairs.

The calibration pairs name 2-3 pairs of groups per category; directions taken from them alone
erase those groups and barely touch others (on Gemma 3 270M, gender and age, whose groups share
one direction, transferred to the held-out split; race, religion, disability and socioeconomic
status did not). A category's direction space is better spanned by many of its groups, each said
in the same neutral sentences: the states after "a Muslim man" vs "a Christian man" in "Yesterday
I talked to the ... for a while." differ in the group and nothing else, with no attribute that
could carry an association into the contrast.

The list names common groups of each category (the words BBQ-style benchmarks use) and, for
gender and race, first names; it is written here and holds no probe sentence, so the held-out
split stays unseen. Twenty pairs per category, where the directions take twelve: with twelve
pairs, each direction was one pair's contrast, and a group the list did not name was erased only
as far as its contrast lay in their span (Gemma 3 270M, every pair naming a held-out group's word
left out: 59% of the held-out bias removed with twelve pairs, 67% with these).
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
        ("mom", "dad"),
        ("girlfriend", "boyfriend"),
        ("businesswoman", "businessman"),
        ("policewoman", "policeman"),
        ("female coworker", "male coworker"),
        ("female doctor", "male doctor"),
        ("transgender woman", "cisgender woman"),
        ("transgender man", "cisgender man"),
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
        ("Hispanic man", "Black man"),
        ("Middle Eastern man", "white man"),
        ("Roma woman", "white woman"),
        ("South Asian man", "East Asian man"),
        ("Black neighbor", "white neighbor"),
        ("Asian coworker", "Latino coworker"),
        ("Caucasian woman", "African American woman"),
        ("Indigenous man", "European man"),
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
        ("Hindu woman", "Christian woman"),
        ("Jewish man", "Muslim man"),
        ("Catholic man", "Protestant man"),
        ("Buddhist man", "Christian man"),
        ("Mormon woman", "Catholic woman"),
        ("Sikh woman", "Christian woman"),
        ("Muslim neighbor", "Jewish neighbor"),
        ("atheist woman", "religious woman"),
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
        ("old neighbor", "young neighbor"),
        ("elderly customer", "young customer"),
        ("seventy-year-old", "teenager"),
        ("retired man", "young professional"),
        ("middle-aged woman", "young woman"),
        ("baby boomer", "millennial"),
        ("elderly driver", "young driver"),
        ("grandpa", "kid"),
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
        ("Vietnamese man", "Canadian man"),
        ("Ethiopian woman", "Finnish woman"),
        ("Syrian man", "Belgian man"),
        ("Afghan man", "Danish man"),
        ("Turkish woman", "Austrian woman"),
        ("Colombian man", "Scottish man"),
        ("Somali woman", "Icelandic woman"),
        ("American man", "Indian man"),
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
        ("man with schizophrenia", "other man"),
        ("woman with autism", "other woman"),
        ("man with cerebral palsy", "man without a disability"),
        ("mentally ill woman", "healthy woman"),
        ("person with a learning disability", "other person"),
        ("woman with a hearing aid", "woman without a hearing aid"),
        ("man with a prosthetic leg", "man with two legs"),
        ("person with bipolar disorder", "other person"),
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
        ("low-income man", "high-income man"),
        ("poor family", "wealthy family"),
        ("man from a trailer park", "man from a mansion"),
        ("dishwasher", "professor"),
        ("truck driver", "physician"),
        ("line cook", "chemist"),
        ("bus driver", "architect"),
        ("woman on food stamps", "woman with a trust fund"),
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
        ("pregnant woman", "woman who was not pregnant"),
        ("obese man", "thin man"),
        ("short man", "tall man"),
        ("man with a beard", "clean-shaven man"),
        ("overweight man", "slim man"),
        ("man with a facial scar", "man with a smooth face"),
        ("heavyset woman", "petite woman"),
        ("woman with glasses", "woman without glasses"),
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
        ("gay woman", "straight woman"),
        ("pansexual man", "straight man"),
        ("asexual woman", "straight woman"),
        ("gay neighbor", "straight neighbor"),
        ("lesbian student", "straight student"),
        ("bisexual student", "gay student"),
        ("gay couple", "straight couple"),
        ("homosexual woman", "heterosexual woman"),
    ),
}

# First names said without an article. Benchmarks name people as often as groups (BBQ's gender
# and race items, CrowS-Pairs); the names are ones the audit-study literature uses as signals of
# gender or of race, paired within the other attribute so a pair differs in one of them.
NAMES: dict[str, tuple[tuple[str, str], ...]] = {
    "gender": (
        ("Mary", "John"),
        ("Jennifer", "Michael"),
        ("Susan", "Robert"),
        ("Emily", "David"),
        ("Linda", "James"),
        ("Elizabeth", "William"),
    ),
    "race_ethnicity": (
        ("Jamal", "Greg"),
        ("Lakisha", "Emily"),
        ("Tyrone", "Brad"),
        ("Juan Rodriguez", "John Miller"),
        ("Mei Chen", "Anne Miller"),
        ("Ahmed Hassan", "Thomas Walker"),
    ),
}

# Neutral sentences: the group is all that differs, and nothing after it is an attribute.
FRAMES = (
    "{g} walked into the room and sat down.",
    "Yesterday I talked to {g} for a while.",
    "{g} lives next door to us.",
    "We met {g} at the station this morning.",
    "According to the report, {g} arrived early.",
    "{g} asked a question about the schedule.",
)


def say(frame: str, person: str) -> str:
    """The frame with `person` (a group with its article, or a name), capitalised as a sentence."""
    text = frame.format(g=person)
    return text[0].upper() + text[1:]


def people(category: str) -> list[tuple[str, str, str]]:
    """A category's contrasted pairs and the article each is said with ("the" for a group, none
    for a name)."""
    return [(a, b, "the ") for a, b in GROUPS[category]] + [
        (a, b, "") for a, b in NAMES.get(category, ())
    ]


def lexicon_contrasts(
    leave_out: Callable[[str], bool] | None = None,
) -> tuple[list[tuple[str, str]], list[str]]:
    """Sentence pairs differing only in the group, and each pair's category; a pair is left out
    where `leave_out` holds for either of its groups or names."""
    pairs, labels = [], []
    for category in CATEGORIES:
        for a, b, article in people(category):
            if leave_out and (leave_out(a) or leave_out(b)):
                continue
            for frame in FRAMES:
                pairs.append((say(frame, article + a), say(frame, article + b)))
                labels.append(category)
    return pairs, labels
