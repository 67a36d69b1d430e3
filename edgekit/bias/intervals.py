"""Bootstrap intervals of the suite's scores and of before/after changes.

Error bars. `bootstrap` resamples the probes of each category with replacement (seeded) and
reports the 2.5 / 97.5 percentiles of every score: with a dozen probes per category a score
moves a lot with which probes happen to be in the split, and a claimed change must be outside
that.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from edgekit.bias.scores import SuiteRun, relative_reduction


@dataclass(frozen=True)
class Interval:
    """A score and its bootstrap 95% interval."""

    value: float
    low: float
    high: float

    def to_dict(self) -> dict[str, float]:
        return {"value": self.value, "low": self.low, "high": self.high}

    def excludes(self, x: float) -> bool:
        return not self.low <= x <= self.high


Draws = npt.NDArray[np.float64]
Indices = npt.NDArray[np.int64]


def _per_probe(run: SuiteRun, category: str) -> tuple[Draws, Draws, Draws]:
    pairs = [p.preference() for p in run.pairs if p.probe.category == category]
    amb = [q.bias() for q in run.questions if q.probe.category == category and q.probe.ambiguous]
    dis = [
        float(q.answer() == q.probe.correct)
        for q in run.questions
        if q.probe.category == category and not q.probe.ambiguous
    ]
    return (np.array(pairs), np.array(amb), np.array(dis))


def _resampled_means(values: Draws, idx: Indices) -> Draws:
    """Mean of each resample (idx rows); zeros when there is nothing to resample."""
    if values.size == 0:
        return np.zeros(idx.shape[0])
    return np.asarray(values[idx].mean(axis=1), dtype=np.float64)


def _bias_samples(runs: Sequence[SuiteRun], n: int, seed: int) -> tuple[list[Draws], list[Draws]]:
    """Per run: n bootstrap draws of overall bias and of disambiguated accuracy.

    The same resampled probe indices are used for every run, so runs of the same suite under
    different constraints are compared pairwise (the probe mix cancels out of their difference).
    """
    rng = np.random.default_rng(seed)
    cats = runs[0].suite.categories
    bias = [np.zeros(n) for _ in runs]
    hits = [np.zeros(n) for _ in runs]
    n_dis = 0
    for c in cats:
        parts = [_per_probe(r, c) for r in runs]
        idx = [rng.integers(0, max(len(v), 1), (n, max(len(v), 1))) for v in parts[0]]
        for k, (pairs, amb, dis) in enumerate(parts):
            p = _resampled_means(pairs, idx[0])
            a = _resampled_means(amb, idx[1])
            bias[k] += (np.abs(p) + np.abs(a)) / 2 / len(cats)
            if dis.size:
                hits[k] += dis[idx[2]].sum(axis=1)
        n_dis += parts[0][2].size
    return bias, [h / max(n_dis, 1) for h in hits]


def centred_interval(value: float, draws: Draws) -> Interval:
    """The draws' middle 95%, moved so that their median sits on the score.

    Why moved: the bias score averages absolute values of per-category means over a few probes,
    and a resampled |mean| is larger than |mean| whenever the mean is near 0 (on the held-out
    split of Gemma 3 270M the draws averaged 0.18 for a score of 0.13, and 0.13 for 0.05 after
    the erasure). The plain percentile interval then sits above the score, and the reflected
    ("basic") one, 2 * value - the percentiles, below it: for the erasure it gave a bias interval
    under 0 and a reduction interval of [73%, 126%] around a reduction of 62%. The spread of the
    draws is the uncertainty; their offset is the estimator's bias, not information.
    """
    q_low, median, q_high = np.percentile(draws, [2.5, 50, 97.5])
    return Interval(value, float(value - (median - q_low)), float(value + (q_high - median)))


def bootstrap(run: SuiteRun, n: int = 1000, seed: int = 0) -> dict[str, Interval]:
    """95% intervals of the overall bias and disambiguated accuracy of one run."""
    scores = run.scores()
    (bias,), (acc,) = _bias_samples([run], n, seed)
    return {
        "bias": centred_interval(scores.bias, bias),
        "disambiguated_accuracy": centred_interval(scores.disambiguated_accuracy, acc),
    }


def paired_reduction(
    before: SuiteRun, after: SuiteRun, n: int = 1000, seed: int = 0
) -> dict[str, Interval]:
    """The relative bias reduction and the accuracy change, with paired bootstrap intervals."""
    (b0, b1), (a0, a1) = _bias_samples([before, after], n, seed)
    s0, s1 = before.scores(), after.scores()
    reduction = (b0 - b1) / np.where(b0 > 0, b0, np.nan)
    return {
        "bias_reduction": centred_interval(
            relative_reduction(s0.bias, s1.bias), reduction[~np.isnan(reduction)]
        ),
        "accuracy_change": centred_interval(
            s1.disambiguated_accuracy - s0.disambiguated_accuracy, a1 - a0
        ),
    }
