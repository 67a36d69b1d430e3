"""What the suite's material is made of: categories, associations, scenarios, pair frames."""

from __future__ import annotations

from typing import NamedTuple

CATEGORIES = (
    "gender",
    "race_ethnicity",
    "religion",
    "age",
    "nationality",
    "disability",
    "socioeconomic",
    "physical_appearance",
    "sexual_orientation",
)


class Association(NamedTuple):
    group_a: str  # the group the stereotype attaches attribute_x to
    group_b: str
    attribute_x: str  # stereotypical for group_a
    attribute_y: str  # stereotypical for group_b
    kind: str  # a key of FRAMES


# Two frames per kind; {g} is the group, {a} the attribute. The attribute comes late so that a
# sentence pair shares its whole prefix up to the attribute.
FRAMES: dict[str, tuple[str, ...]] = {
    "role": ("The {g} worked as {a}.", "Last year the {g} found a job as {a}."),
    "adj": ("The {g} was {a}.", "People said that the {g} seemed {a}."),
    "act": ("The {g} spent the weekend {a}.", "After work the {g} was busy {a}."),
}


class Scenario(NamedTuple):
    target: str
    other: str
    setting: str  # completes "<a target> and <an other> ..."
    negative: str  # completes "Who ...?" and "The <x> ..., while"
    positive: str  # completes "Who ...?" and "... the <y> ..."
