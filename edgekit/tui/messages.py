"""What the dashboard's thread workers tell the UI thread (posting a message never blocks)."""

from __future__ import annotations

from typing import Any

from textual.message import Message

from edgekit.backends.base import GenerationResult, Runtime
from edgekit.backends.runner import RunPlan
from edgekit.errors import EdgekitError


class GenerationStopped(Exception):
    """Raised from the token callback to end a generation the user stopped."""


class Note(Message):
    """Something the user should know that is not an error (a setting lowered to fit)."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text


class PlanReady(Message):
    def __init__(self, plan: RunPlan) -> None:
        super().__init__()
        self.plan = plan


class BiasScores(Message):
    """This model's stored bias scores (edgekit.bias.api.latest_scores), read in a worker."""

    def __init__(self, summary: dict[str, Any]) -> None:
        super().__init__()
        self.summary = summary


class ModelLoaded(Message):
    def __init__(self, runtime: Runtime) -> None:
        super().__init__()
        self.runtime = runtime


class ModelFailed(Message):
    def __init__(self, error: EdgekitError, still_open: Runtime | None) -> None:
        super().__init__()
        self.error, self.still_open = error, still_open


class GenerationDone(Message):
    """`result` is None when the user stopped the generation or it failed with `error`."""

    def __init__(
        self, result: GenerationResult | None, error: EdgekitError | None, dropped: int = 0
    ) -> None:
        super().__init__()
        self.result, self.error = result, error
        self.dropped = dropped  # the oldest turns fit_history left out to make room
