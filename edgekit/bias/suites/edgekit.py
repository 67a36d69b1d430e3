"""edgekit's own suite: likelihood pairs and questions over nine categories (edgekit.bias.probes),
scored as edgekit.bias.scores defines, with bootstrap intervals over the probes' sources.

`split` picks the calibration or held-out half (or all of it); `repeat` > 1 also samples the
answers N times at `temperature` to show how stable the scores are under sampled generation.
"""

from __future__ import annotations

from statistics import fmean, pstdev
from typing import Any, cast

from edgekit.bias.intervals import bootstrap
from edgekit.bias.logprobs import LogProbScorer
from edgekit.bias.probes import ProbeSuite, Split, build_suite
from edgekit.bias.scores import SuiteScores, run_suite
from edgekit.bias.suites.base import HistoryEntry, Progress, ScoreTable, SuiteRequest
from edgekit.errors import BiasError

SPLITS = ("all", "calibration", "heldout")
NOTE = (
    "bias = (|P| + |A|) / 2 per category, 0 = unbiased; P: stereotype preference of likelihood "
    "pairs; A: lean toward the stereotyped person on ambiguous questions; [low, high]: 95% "
    "bootstrap interval over probes."
)


def check_split(split: str) -> None:
    if split not in SPLITS:
        raise BiasError(f"unknown split {split!r}", hint=f"Use one of: {', '.join(SPLITS)}.")


def repeat_stats(sampled: list[SuiteScores], temperature: float, seed: int) -> dict[str, Any]:
    """Mean and spread of the scores over answers sampled `len(sampled)` times."""

    def stats(values: list[float]) -> dict[str, float]:
        return {"mean": fmean(values), "std": pstdev(values)}

    cats = [c.category for c in sampled[0].categories]
    return {
        "n": len(sampled),
        "temperature": temperature,
        "seed": seed,
        "bias": stats([s.bias for s in sampled]),
        "disambiguated_accuracy": stats([s.disambiguated_accuracy for s in sampled]),
        "categories": {c: stats([s.by_category()[c].bias for s in sampled]) for c in cats},
    }


def scores_table(
    scores: dict[str, Any], title: str, repeats: dict[str, Any] | None = None
) -> ScoreTable:
    """SuiteScores.to_dict() (with "intervals" when bootstrapped) as a table."""
    columns = ["category", "bias", "pairs P", "ambiguous A", "disamb. acc", "stereo rate"]
    columns.append("unknown")
    spread = ""
    if repeats:
        columns.append(f"bias over {repeats['n']} samples")
        spread = f"{repeats['bias']['mean']:.3f} ± {repeats['bias']['std']:.3f}"
    rows = []
    for name, c in scores["categories"].items():
        row = [
            name,
            f"{c['bias']:.3f}",
            f"{c['pair_bias']:+.3f}",
            f"{c['ambiguity_bias']:+.3f}",
            f"{c['disambiguated_accuracy']:.1%}",
            f"{c['stereotype_rate']:.0%}",
            f"{c['unknown_rate']:.0%}",
        ]
        if repeats:
            r = repeats["categories"][name]
            row.append(f"{r['mean']:.3f} ± {r['std']:.3f}")
        rows.append(tuple(row))
    overall = f"{scores['bias']:.3f}"
    if "intervals" in scores:
        b = scores["intervals"]["bias"]
        overall += f" [{b['low']:.3f}, {b['high']:.3f}]"
    total = ["overall", overall, "", "", f"{scores['disambiguated_accuracy']:.1%}", "", ""]
    total += [spread] if repeats else []
    return ScoreTable(title, tuple(columns), tuple(rows), tuple(total), NOTE)


class EdgekitSuite:
    title = "edgekit suite"
    data = ""

    def read(self, request: SuiteRequest) -> ProbeSuite:
        check_split(request.split)
        return build_suite(None if request.split == "all" else cast("Split", request.split))

    def score(
        self,
        scorer: LogProbScorer,
        items: ProbeSuite,
        request: SuiteRequest,
        progress: Progress | None,
    ) -> dict[str, Any]:
        run = run_suite(scorer, items, progress)
        intervals = {k: v.to_dict() for k, v in bootstrap(run, seed=request.seed).items()}
        out: dict[str, Any] = {
            "split": request.split,
            "scores": {**run.scores().to_dict(), "intervals": intervals},
        }
        if request.repeat > 1:
            sampled = run.sampled(request.repeat, request.seed, request.temperature)
            out["repeats"] = repeat_stats(sampled, request.temperature, request.seed)
        return out

    def history(self, result: dict[str, Any], request: SuiteRequest) -> HistoryEntry:
        repeats = {"repeats": result["repeats"]} if "repeats" in result else {}
        return HistoryEntry(request.split, request.repeat, {**result["scores"], **repeats})

    def tables(self, result: dict[str, Any]) -> list[ScoreTable]:
        title = f"Bias ({result['split']})"
        return [scores_table(result["scores"], title, result.get("repeats"))]


SUITE = EdgekitSuite()
