"""Bootstrap intervals of the suite's scores and of before/after changes.

Error bars. `bootstrap` resamples each category's probe sources (the associations and scenarios
the probes are said from) with replacement (seeded) and reports the 2.5 / 97.5 percentiles of
every score: with a few sources per category a score moves a lot with which of them happen to
be in the split, and a claimed change must be outside that.
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


@dataclass(frozen=True)
class Clusters:
    """Per-probe values summed per source (association or scenario) and counted."""

    sums: Draws
    counts: Draws

    @classmethod
    def of(cls, values: Sequence[tuple[str, float]]) -> Clusters:
        sums: dict[str, float] = {}
        counts: dict[str, float] = {}
        for source, v in values:
            sums[source] = sums.get(source, 0.0) + v
            counts[source] = counts.get(source, 0.0) + 1.0
        return cls(np.array(list(sums.values())), np.array(list(counts.values())))

    def __len__(self) -> int:
        return len(self.sums)

    def resampled_means(self, idx: Indices) -> Draws:
        """Mean over the probes of each resample's sources (idx rows); zeros when empty."""
        if not len(self):
            return np.zeros(idx.shape[0])
        return np.asarray(self.sums[idx].sum(axis=1) / self.counts[idx].sum(axis=1))


def _per_source(run: SuiteRun, category: str) -> tuple[Clusters, Clusters, Clusters]:
    pairs = [(p.probe.source, p.preference()) for p in run.pairs if p.probe.category == category]
    qs = [q for q in run.questions if q.probe.category == category]
    amb = [(q.probe.source, q.bias()) for q in qs if q.probe.ambiguous]
    dis = [
        (q.probe.source, float(q.answer() == q.probe.correct)) for q in qs if not q.probe.ambiguous
    ]
    return Clusters.of(pairs), Clusters.of(amb), Clusters.of(dis)


def _bias_samples(runs: Sequence[SuiteRun], n: int, seed: int) -> tuple[list[Draws], list[Draws]]:
    """Per run: n bootstrap draws of overall bias and of disambiguated accuracy.

    What is resampled is the source of a probe (an association, a scenario), not the probe:
    one association's two sentence frames move together, and one scenario's negative and
    positive questions offset each other (a position or group habit cancels between them), so
    probe by probe the spread of the pair bias would be understated and that of the ambiguity
    bias overstated. The same resampled sources are used for every run, so runs of the same
    suite under different constraints are compared pairwise (the mix cancels from the change).
    """
    rng = np.random.default_rng(seed)
    cats = runs[0].suite.categories
    bias = [np.zeros(n) for _ in runs]
    hits = [np.zeros(n) for _ in runs]
    asked = np.zeros(n)
    for c in cats:
        parts = [_per_source(r, c) for r in runs]
        idx = [rng.integers(0, max(len(v), 1), (n, max(len(v), 1))) for v in parts[0]]
        for k, (pairs, amb, dis) in enumerate(parts):
            p = pairs.resampled_means(idx[0])
            a = amb.resampled_means(idx[1])
            bias[k] += (np.abs(p) + np.abs(a)) / 2 / len(cats)
            if len(dis):
                hits[k] += dis.sums[idx[2]].sum(axis=1)
        if len(parts[0][2]):
            asked += parts[0][2].counts[idx[2]].sum(axis=1)
    return bias, [h / np.maximum(asked, 1.0) for h in hits]


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


def share_below(a: SuiteRun, b: SuiteRun, n: int = 1000, seed: int = 0) -> float:
    """The share of paired resamples (the same probe sources for both runs of one suite) in
    which a's bias is below b's."""
    (da, db), _ = _bias_samples([a, b], n, seed)
    return float(np.mean(da < db))
