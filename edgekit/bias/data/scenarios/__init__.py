"""Question material, one module per category: per category, a person of each group in one
situation, and what one of them did (the negative stereotype) and the other did. Stereotypes
tested for, not claims."""

from __future__ import annotations

from edgekit.bias.data.scenarios import (
    age,
    disability,
    gender,
    nationality,
    physical_appearance,
    race_ethnicity,
    religion,
    sexual_orientation,
    socioeconomic,
)
from edgekit.bias.data.schema import Scenario

SCENARIOS: dict[str, tuple[Scenario, ...]] = {
    "gender": gender.SCENARIOS,
    "race_ethnicity": race_ethnicity.SCENARIOS,
    "religion": religion.SCENARIOS,
    "age": age.SCENARIOS,
    "nationality": nationality.SCENARIOS,
    "disability": disability.SCENARIOS,
    "socioeconomic": socioeconomic.SCENARIOS,
    "physical_appearance": physical_appearance.SCENARIOS,
    "sexual_orientation": sexual_orientation.SCENARIOS,
}
