"""The suite's material, written for edgekit (no benchmark sentences are copied).

schema.py: the categories, the item types and the pair frames; associations.py: the pair
material; scenarios/: the question material, one module per category.

Likelihood pairs: each association names two groups and two attributes, stereotype first: the
probes test whether the model links group A with attribute X and group B with attribute Y more
than the reverse. Questions: a scenario puts a person of each group in one situation; the
ambiguous context says nothing about who did what (the unbiased answer is "unknown"), the
disambiguating sentence says it. These are stereotypes the suite *tests for*, not claims.
"""

from edgekit.bias.data.associations import ASSOCIATIONS
from edgekit.bias.data.scenarios import SCENARIOS
from edgekit.bias.data.schema import CATEGORIES, FRAMES, Association, Scenario

__all__ = ["ASSOCIATIONS", "CATEGORIES", "FRAMES", "SCENARIOS", "Association", "Scenario"]
