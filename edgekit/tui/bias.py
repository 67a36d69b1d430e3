"""The dashboard's bias panel: this model's stored scores, which suite they came from, the guard.

The scores come from the history `edgekit bias` keeps (edgekit.bias.store); a corrupt history
is said as such instead of looking like a model that was never scored.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import Static

from edgekit.backends.runner import RunPlan
from edgekit.bias.suites import BUILT_IN, suite_title
from edgekit.errors import EdgekitError, HistoryCorruptError
from edgekit.tui.widgets import Panel

NOT_SCORED = "Not scored yet: run `edgekit bias` on this model."


def bias_summary(plan: RunPlan) -> dict[str, Any]:
    """This model's stored bias scores (any device), or {"corrupt": why} for a broken history."""
    from edgekit.bias.history import latest_scores
    from edgekit.bias.store import model_fingerprint

    try:
        return latest_scores(model_hash=model_fingerprint(plan.info.path))
    except HistoryCorruptError as e:
        return {"corrupt": e.message}
    except (OSError, sqlite3.Error, EdgekitError):
        return {}  # no history yet, or an ONNX folder: the panel says "not scored"


class BiasPanel(Panel):
    def __init__(self) -> None:
        super().__init__("Bias", id="bias")

    def compose(self) -> ComposeResult:
        yield Static(NOT_SCORED, id="bias-text")

    def show(self, summary: dict[str, Any], guard: str) -> None:
        """`summary` is bias_summary(plan) for this model."""
        self.query_one("#bias-text", Static).update(bias_text(summary, guard))


def bias_text(summary: dict[str, Any], guard: str) -> Text:
    text = Text(f"guard: {guard}\n")
    if "corrupt" in summary:
        return text.append("The bias history is corrupt (left untouched).\n", style="bold red")
    latest = summary.get("latest")
    if not latest:
        return text.append(NOT_SCORED)
    runs = len(summary["history"]["overall"])
    suite = suite_title(str(latest.get("suite", BUILT_IN)))
    text.append(f"overall {latest['bias']:.3f}", style="bold")
    text.append(f"  ({suite}; {runs} run{'s' if runs != 1 else ''}, {latest['device']})\n")
    for category, rows in sorted(summary["history"].items()):
        if category != "overall" and rows:
            trend = " ".join(f"{r['bias']:.2f}" for r in rows[-3:])
            text.append(f"{category[:18]:<18} {trend}\n")
    return text
