"""The feedback controller: measured bias of the last output in, constraint strength out.

The constraint is the calibrated control vector times a strength s (s = 1 applies the layer
schedule as calibrated). After each output the measured bias b in [0, 1] moves s:

- b > target: raise, s <- min(max, s + gain * (b - target)), at least `min_step`;
  and if b > threshold the output is regenerated under the new strength (at most
  `max_regenerations` times per turn);
- b <= target: relax toward the floor, s <- floor + (s - floor) * relax, so a run of clean
  outputs hands the model back its unconstrained (or calibrated) behaviour.

Pure and deterministic: the state is a small value that the guard persists between turns and
sessions, and every decision is returned as an Adjustment to be logged.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any


@dataclass(frozen=True)
class LoopConfig:
    target: float = 0.1  # at or below: the output counts as clean
    threshold: float = 0.5  # above: regenerate the output
    gain: float = 1.0
    min_step: float = 0.25
    relax: float = 0.7  # share of the excess over the floor kept after a clean output
    floor: float = 0.0
    max_strength: float = 2.0
    max_regenerations: int = 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Adjustment:
    turn: int
    measured: float
    strength_before: float
    strength_after: float
    action: str  # "raise", "relax" or "hold"
    regenerate: bool
    at: float
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class LoopState:
    strength: float = 0.0
    turn: int = 0
    adjustments: int = 0
    last_measured: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LoopState:
        known = {k: d[k] for k in ("strength", "turn", "adjustments", "last_measured") if k in d}
        return cls(**known)


def step(
    state: LoopState,
    measured: float,
    config: LoopConfig,
    regenerations_so_far: int = 0,
    detail: dict[str, Any] | None = None,
    now: float | None = None,
) -> tuple[LoopState, Adjustment]:
    """One controller update after an output whose bias was `measured`."""
    s = state.strength
    if measured > config.target:
        new = min(
            config.max_strength, s + max(config.min_step, config.gain * (measured - config.target))
        )
        action = "raise" if new > s else "hold"
    else:
        new = max(config.floor, config.floor + (s - config.floor) * config.relax)
        if new - config.floor < 1e-3:
            new = config.floor
        action = "relax" if new < s else "hold"
    regenerate = (
        measured > config.threshold and regenerations_so_far < config.max_regenerations and new > s
    )
    adjustment = Adjustment(
        turn=state.turn,
        measured=measured,
        strength_before=s,
        strength_after=new,
        action=action,
        regenerate=regenerate,
        at=time.time() if now is None else now,
        detail=detail or {},
    )
    return (
        replace(
            state,
            strength=new,
            adjustments=state.adjustments + (action != "hold"),
            last_measured=measured,
        ),
        adjustment,
    )


def next_turn(state: LoopState) -> LoopState:
    return replace(state, turn=state.turn + 1)
