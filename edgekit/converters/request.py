"""What every convert pipeline takes and gives back, whatever the target and recipe.

The CLI builds one `ConvertRequest`, hands it to the pipeline of its target and recipe
(converters/gguf.py: spike | target-bpw | random; converters/measured.py: measured;
converters/onnx.py: every ONNX precision), and renders the one `ConvertResult` it gets back.
Progress and messages go through the request's `stage` and `say`, so no pipeline prints.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gguf import GGMLQuantizationType

from edgekit.outputs import partial_path, remove_stale_partials

if TYPE_CHECKING:
    from edgekit.quant.planner import Plan, Recipe
    from edgekit.quant.spikes import SpikeProfile

Q = GGMLQuantizationType
Update = Callable[..., None]  # (done, total, *label)
Stage = Callable[[str], AbstractContextManager[Update]]  # a progress bar for one named step
Say = Callable[[str], None]
SPIKES_FILE = "spikes.json"  # the spike profile, saved beside a converted ONNX model


@contextlib.contextmanager
def no_progress(_: str) -> Iterator[Update]:
    yield lambda *_: None


def say_nothing(_: str) -> None:
    return None


@dataclass(frozen=True)
class ConvertRequest:
    """One `edgekit convert`, its options resolved: types parsed, recipe built, output named."""

    source: Path
    output: Path
    target: str = "gguf"  # gguf | onnx
    recipe: str = "measured"  # measured | spike | target-bpw | random
    plan_recipe: Recipe | None = None  # the planner's recipe (every recipe but measured)
    base_type: GGMLQuantizationType = Q.Q4_K
    output_type: GGMLQuantizationType = Q.Q6_K
    mix: str | None = None  # measured: the stock mix whose size to match
    target_bpw: float | None = None
    precision: str = "int4"  # ONNX only
    scores: Path | SpikeProfile | None = None  # saved spike scores, instead of a calibration
    scores_out: Path | None = None
    calib_text: str | None = None  # None: the built-in calibration text
    dry_run: bool = False
    evaluate: bool = True  # the ONNX pipeline then also prepares the fp32 reference
    trust_remote_code: bool = False
    threads: int = 2
    quiet: bool = False
    stage: Stage = no_progress
    say: Say = say_nothing

    @property
    def calibration_text(self) -> str:
        if self.calib_text is not None:
            return self.calib_text
        from edgekit.texts.calibration import CALIBRATION_TEXT

        return CALIBRATION_TEXT


@dataclass
class ConvertResult:
    """What a pipeline wrote, for every target: the CLI renders any of them the same way.

    `report` holds the --json keys of this target beyond output and file_size; `title`,
    `subtitle`, `measure` and `note` make the one line a terminal shows:
    "{title}{subtitle}: {size}{measure} -> {output}" and then `note`."""

    output: Path
    plan: Plan
    file_size: int
    seconds: float
    title: str
    subtitle: str = ""
    measure: str = ""
    note: str = ""
    report: dict[str, Any] = field(default_factory=dict)
    show_plan: bool = False  # the whole plan even without --verbose (a dry run of a spike plan)
    reference: Path | None = None  # the float model a quality table compares with
    profile: SpikeProfile | None = None
    written: bool = True  # False: a dry run, nothing written


def kept_rows(p: Plan) -> list[dict[str, Any]]:
    """The kept tensors as the --json report lists them."""
    return [{"tensor": d.tensor, "type": d.type.name, "score": d.score} for d in p.kept]


def kept_names(p: Plan) -> str:
    """The kept tensors for the terminal, with their spike scores (a random pick has none)."""
    named = (d.tensor if d.score is None else f"{d.tensor} ({d.score:.1f})" for d in p.kept)
    return ", ".join(named) or "none"


def plan_record(p: Plan, **extra: Any) -> dict[str, Any]:
    """plan.json, for every target: the plan, then what is specific to the target."""
    return {**p.to_dict(), **extra}


def written_size(folder: Path, prefix: str) -> int:
    """Bytes of a folder's files whose names start with `prefix` (a graph and its data)."""
    return sum(f.stat().st_size for f in folder.iterdir() if f.name.startswith(prefix))


@contextlib.contextmanager
def partial_folder(out: Path) -> Iterator[Path]:
    """A work folder beside `out` (named as every partial output is, outputs.partial_path),
    removed whatever happens: a pipeline writing a folder builds it inside and renames it to
    `out` as its last step. Work folders of killed runs are removed first."""
    remove_stale_partials(out)
    work = partial_path(out)
    work.mkdir()
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)
