"""What every bias suite module provides, and the shapes they hand to the history and the fronts.

A suite is an object with four parts (the `Suite` protocol): `read` turns the user's request
(a data path for a standard benchmark, a split for edgekit's own probes) into items, refusing
an empty or malformed input with a BiasDataError that names the file and line; `score` answers
them with a LogProbScorer and returns the suite's own JSON fields; `history` maps those onto the
history's per-category shape (bias, pair bias, ambiguity bias, accuracy); `tables` says how the
fronts show them. The fronts never branch on the suite's name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from edgekit.bias.logprobs import LogProbScorer
from edgekit.errors import BiasDataError

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class SuiteRequest:
    """What to score: the data file or folder (standard benchmarks), how much of it, and how."""

    path: Path | None = None
    limit: int | None = None  # items per file, drawn with `seed`
    split: str = "all"  # edgekit's probes: all, calibration or heldout
    repeat: int = 1  # edgekit's probes: also sample the answers N times
    temperature: float = 1.0
    seed: int = 0


@dataclass(frozen=True)
class HistoryEntry:
    """A suite's scores in the history's shape: which split, how many repeats, and
    {"bias", "disambiguated_accuracy", "categories": {name: {bias, pair_bias, ambiguity_bias,
    disambiguated_accuracy}}, ...} (a suite may keep its raw scores beside them)."""

    split: str
    repeats: int
    scores: dict[str, Any]


@dataclass(frozen=True)
class ScoreTable:
    """Scores as a table for a front: plain strings, never markup (category names come from
    the user's data files). The first column holds names; `total` is an emphasised last row."""

    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    total: tuple[str, ...] = ()
    note: str = ""


class Suite(Protocol):
    title: str  # how the fronts name it ("BBQ")
    data: str  # what `--suite NAME PATH` reads ("DIR", "FILE.csv"); "" for a built-in suite

    def read(self, request: SuiteRequest) -> Any: ...

    def score(
        self,
        scorer: LogProbScorer,
        items: Any,
        request: SuiteRequest,
        progress: Progress | None,
    ) -> dict[str, Any]: ...

    def history(self, result: dict[str, Any], request: SuiteRequest) -> HistoryEntry: ...

    def tables(self, result: dict[str, Any]) -> list[ScoreTable]: ...


def interval_text(d: dict[str, float], fmt: str = "{:+.3f}") -> str:
    return f"{fmt.format(d['value'])} [{fmt.format(d['low'])}, {fmt.format(d['high'])}]"


def mean_categories(categories: dict[str, dict[str, float]], raw: Any) -> dict[str, Any]:
    """The history's overall numbers: the mean over categories, raw scores kept beside them."""
    n = len(categories) or 1
    return {
        "bias": sum(c["bias"] for c in categories.values()) / n,
        "disambiguated_accuracy": sum(c["disambiguated_accuracy"] for c in categories.values()) / n,
        "categories": categories,
        "raw": raw,
    }


def decode_utf8(path: Path) -> str:
    """The file's text; a byte that is not UTF-8 is reported with its line."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise BiasDataError(
            f"{path}: line {line} is not UTF-8 (byte 0x{data[e.start]:02x})",
            hint="Benchmarks are released as UTF-8; re-download or re-encode the file.",
        ) from None


def empty_suite(path: Path, what: str) -> BiasDataError:
    """An empty suite would be stored as a score of 0 (unbiased) or NaN: it is refused."""
    return BiasDataError(
        f"{path} holds no {what}",
        hint="Point --suite at the benchmark's release file(s); an empty file scores nothing.",
    )


def require_items(items: Sequence[Any], path: Path, what: str) -> None:
    if not items:
        raise empty_suite(path, what)
