"""`edgekit bias --mitigate`: the erasure adapter's blocks and rank, judged out of fold.

The directions are derived from the calibration pairs, so judging an adapter on those same
pairs would grade it on the sentences it was fitted to, and favour whatever fits them best (more
blocks, more directions) over what carries over to unseen groups and attributes.

So each candidate is judged the way the held-out split will judge it: the calibration probes are
dealt into FOLDS folds by source, and each fold is scored under directions derived without its
own pairs (the group lexicon and the plain-text statistics stay). Perplexity on real text is read
under the adapter that ships (directions from every pair), since that is the one it will cost.

Candidates (the per-block weights a_l and the directions per block), all at scale 1, the exact
erasure: the blocks from band i on (all blocks, then without the first band, ...), each at the
largest rank of MitigationConfig.ranks first, lowered only while the folds lean against the
stereotypes or the limits are broken. Rank is the dial because more directions cover more of
the groups a category has, where a larger scale only pushes harder along the same few. The
directions at a smaller rank are a subset of those at a larger one, so a smaller rank erases
less: measuring it after a larger one that fits only spends a minute on the same block set
(Gemma 3 270M, every block: out-of-fold bias 0.046, 0.058, 0.048 at ranks 54, 81, 108, all
within each other's noise; with the largest first, `--mitigate` measures 4 candidates instead
of 10).

The choice: among the candidates within the perplexity and accuracy limits, the most complete
one (most blocks, then most directions) unless the one with the least out-of-fold bias is below
it in 97.5% of paired resamples of the probe sources. Neighbouring candidates' fold scores
differ by less than their noise, and taking the least of them picks on that noise: on Gemma 3
270M it was blocks 6-17 at rank 108 (0.044 against 0.048 for every block), which removed 68%
of the held-out bias where every block at rank 108 removed 83%. A fold's directions also come
from three quarters of the pairs, so the folds understate what the shipped directions (from
all of them) reach on groups they never saw. The held-out split is never read here.
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from edgekit.bias.controller import (
    Erasure,
    ErasureConstraint,
    Measurement,
    MitigationConfig,
    MitigationResult,
    adapter_path,
    within_limits,
    write_erasure,
)
from edgekit.bias.data import CATEGORIES
from edgekit.bias.derive import DEFAULT_RANK, directions_at, observe_contrasts
from edgekit.bias.erasure import Directions, ModelWeights, Observations
from edgekit.bias.intervals import share_below
from edgekit.bias.logprobs import LogProbScorer
from edgekit.bias.perplexity import SEARCH_TOKENS, text_loss
from edgekit.bias.probes import ProbeSuite, build_suite
from edgekit.bias.scores import SuiteRun, run_suite
from edgekit.bias.suites.bbq import BBQItem, answer_bbq, mean_abs_scores, share_higher

# Four folds, not two: each fold's directions come from three quarters of the pairs, close to
# the shipped ones from all of them. With two, directions from half the pairs could not show
# what more of them buy (Gemma 3 270M, every block, shrink 0.2, out-of-fold bias: rank 81 0.0351
# against rank 108 0.0353 with two folds; 0.0328 against 0.0280 with four, as the held-out split
# sees it).
FOLDS = 4


def rank_steps(steps: int) -> tuple[int, ...]:
    """The ranks `--iterations N` tries per block set: 6, 9, 12, ... directions per category."""
    return tuple((6 + 3 * i) * len(CATEGORIES) for i in range(steps))


def fold_of(source: str, folds: int = FOLDS) -> int:
    return int(hashlib.sha256(source.encode()).hexdigest(), 16) % folds


@dataclass(frozen=True)
class Fold:
    """Calibration probes of one fold, and directions derived without its pairs."""

    suite: ProbeSuite
    directions: Directions


def cross_fit(
    obs: Observations,
    n_layer: int,
    suite: ProbeSuite,
    folds: int = FOLDS,
    ranks: Sequence[int] = (DEFAULT_RANK,),
) -> dict[int, list[Fold]]:
    """Per rank, each fold's probes and the directions derived without its pairs."""
    out: dict[int, list[Fold]] = {r: [] for r in ranks}
    for k in range(folds):
        pairs = tuple(p for p in suite.pairs if fold_of(p.source, folds) == k)
        questions = tuple(q for q in suite.questions if fold_of(q.source, folds) == k)
        unseen = obs.without({p.source for p in pairs})
        for r, directions in directions_at(unseen, n_layer, ranks).items():
            out[r].append(Fold(ProbeSuite(pairs, questions), directions))
    return out


def late_bands(blocks: Sequence[int], bands: int) -> list[tuple[int, ...]]:
    """The candidate block sets: all blocks, then from the second band on, and so on."""
    parts = [[int(b) for b in part] for part in np.array_split(list(blocks), max(1, bands))]
    sets = [tuple(b for part in parts[i:] for b in part) for i in range(len(parts))]
    return [s for s in sets if s]


def merged(runs: Sequence[SuiteRun]) -> SuiteRun:
    pairs = tuple(p for r in runs for p in r.pairs)
    questions = tuple(q for r in runs for q in r.questions)
    suite = ProbeSuite(tuple(p.probe for p in pairs), tuple(q.probe for q in questions))
    return SuiteRun(suite, pairs, questions)


class OutOfFold:
    """Measures a candidate (blocks, rank): bias on the folds, perplexity on the shipped one."""

    def __init__(
        self,
        runtime: Any,
        weights: ModelWeights,
        obs: Observations,
        n_layer: int,
        text: str,
        workdir: Path,
        search: ErasureSearch | None = None,
    ) -> None:
        """search: the ranks it may try (derived together when the first is needed) and the BBQ
        items answered under the shipped adapter of each candidate (bbq_rises)."""
        search = search or ErasureSearch()
        self.runtime, self.weights, self.obs, self.n_layer = runtime, weights, obs, n_layer
        self.text, self.workdir = text, workdir
        self.ranks, self.bbq = tuple(search.config.ranks), tuple(search.bbq)
        self.suite = build_suite("calibration")
        self.scorer = LogProbScorer(runtime.logits())
        self._written = 0
        self._shipped: dict[int, Directions] = {}
        self._folds: dict[int, list[Fold]] = {}

    def shipped(self, rank: int) -> Directions:
        """Directions from every calibration pair at `rank` (every rank derived at once)."""
        if rank not in self._shipped:
            self._shipped.update(directions_at(self.obs, self.n_layer, self._ranks(rank)))
        return self._shipped[rank]

    def folds(self, rank: int) -> list[Fold]:
        if rank not in self._folds:
            self._folds.update(
                cross_fit(self.obs, self.n_layer, self.suite, ranks=self._ranks(rank))
            )
        return self._folds[rank]

    def _ranks(self, rank: int) -> tuple[int, ...]:
        return tuple(sorted({rank, *self.ranks}))

    def _apply(self, directions: Directions, blocks: Sequence[int]) -> None:
        # A fresh file per trial: no two trials can share a loaded adapter handle.
        self._written += 1
        path = self.workdir / f"trial-{self._written}.gguf"
        write_erasure(path, self.weights, directions, dict.fromkeys(blocks, 1.0), {})
        ErasureConstraint(self.runtime, path).apply(1.0)

    def measure(self, blocks: Sequence[int], rank: int) -> Measurement:
        """rank 0: the base model."""
        t0 = time.perf_counter()
        runs = []
        try:
            for fold in self.folds(rank) if rank else []:
                self._apply(fold.directions, blocks)
                runs.append(run_suite(self.scorer, fold.suite))
            if rank:
                self._apply(self.shipped(rank), blocks)
            else:
                runs.append(run_suite(self.scorer, self.suite))
            ppl = text_loss(self.scorer, self.text, (SEARCH_TOKENS,)).perplexity
            answers = tuple(answer_bbq(self.scorer, self.bbq)) if self.bbq else None
        finally:
            self.runtime.set_lora(None, 0.0)
        run = merged(runs)
        seconds = time.perf_counter() - t0
        strength = 1.0 if rank else 0.0
        bbq = None
        if answers is not None:
            everything = np.arange(len(self.bbq))[None, :]
            dis, amb = mean_abs_scores(self.bbq, answers, everything)[0]
            bbq = (float(dis), float(amb))
        return Measurement(
            strength, run.scores(), ppl, seconds, tuple(blocks), rank or None, run, answers, bbq
        )

    def bbq_rises(self, m: Measurement, base: Measurement) -> bool:
        """m's mean |s_DIS| or |s_AMB| on the BBQ items is above the base model's in 97.5% of
        paired resamples of the items: a rise beyond the noise."""
        if m.bbq_answers is None or base.bbq_answers is None:
            return False
        shares = share_higher(self.bbq, base.bbq_answers, m.bbq_answers)
        return max(shares.values()) >= 0.975

    def close(self) -> None:
        self.scorer.close()


class Trials(Protocol):
    def measure(self, blocks: Sequence[int], rank: int) -> Measurement: ...


def clearly_better(a: Measurement, b: Measurement) -> bool:
    """a's out-of-fold bias is below b's in 97.5% of paired resamples of the probe sources;
    without the runs, simply below."""
    if a.run is None or b.run is None:
        return a.scores.bias < b.scores.bias
    return share_below(a.run, b.run) >= 0.975


def completeness(m: Measurement) -> tuple[int, int]:
    """Sort key: more blocks first, then more directions."""
    return (-len(m.blocks or ()), -(m.rank or 0))


def _no_gain(eligible: Sequence[Measurement], least_before: float | None) -> bool:
    """A block set that did not lower the least bias found with more blocks: the sets are nested
    (each the last blocks of the one before), so a yet smaller one is not looked for. On Gemma 3
    270M every block / 6-17 / 12-17 read 0.048 / 0.050 / 0.055; on SmolLM2-135M every block /
    10-29 / 20-29 read 0.034 / 0.030 / 0.038 (the second gained, so the third was measured)."""
    if least_before is None:
        return False
    return min((m.scores.bias for m in eligible), default=least_before) >= least_before


def choose(
    trials: Trials,
    candidates: Sequence[tuple[int, ...]],
    cfg: MitigationConfig,
    on_step: Callable[[Measurement, float], None] | None = None,
    better: Callable[[Measurement, Measurement], bool] = clearly_better,
    refuse: Callable[[Measurement, Measurement], bool] | None = None,
) -> MitigationResult:
    """The most complete candidate within limits that the least out-of-fold bias does not beat
    beyond noise (module doc); refuse(m, base) true puts m out of limits too. Block sets go
    from the most blocks down, and stop at one that finds no less bias than those before."""
    base = trials.measure((), 0)
    ranks = sorted(cfg.ranks, reverse=True)
    if on_step:
        on_step(base, 1.0 if candidates and ranks else 0.0)
    steps: list[Measurement] = []
    eligible: list[Measurement] = []
    for n, blocks in enumerate(candidates):
        least_before = min((m.scores.bias for m in eligible), default=None)
        for k, rank in enumerate(ranks):
            m = trials.measure(blocks, rank)
            steps.append(m)
            fits = within_limits(m, base, cfg) and not (refuse and refuse(m, base))
            if fits and m.scores.bias < base.scores.bias:
                eligible.append(m)
            # A smaller rank erases a subset of these directions: it can only be wanted where
            # this one erases too much (an overshoot) or costs too much. Perplexity is not
            # monotone in the rank (the 20-pair lexicon on Gemma 3 270M, every block: rank 54
            # +2.5%, 81 +4.4%, 108 +3.1%), so past a rank out of limits the next is still tried.
            done = fits and m.lean >= -cfg.tolerance
            last_rank = done or k + 1 == len(ranks)
            stop = last_rank and _no_gain(eligible, least_before)
            more = not stop and (not last_rank or n + 1 < len(candidates))
            if on_step:
                on_step(m, 1.0 if more or eligible else 0.0)
            if done:
                break
        if _no_gain(eligible, least_before):
            break
    if not eligible:
        return MitigationResult(base.strength, base, tuple(steps), -1)
    least = min(eligible, key=lambda m: m.scores.bias)
    chosen = next(m for m in sorted(eligible, key=completeness) if not better(least, m))
    pick = next(k for k, m in enumerate(steps) if m is chosen)
    return MitigationResult(chosen.strength, base, tuple(steps), pick)


@dataclass(frozen=True)
class ErasureSearch:
    """What calibrate_erasure tries, and where the chosen adapter goes."""

    config: MitigationConfig = field(default_factory=MitigationConfig)
    bands: int = 3  # block sets: all blocks, then the last (bands-1)/bands, ...
    path: Path | None = None  # the data folder's adapter for this model by default
    bbq: tuple[BBQItem, ...] = ()  # BBQ items whose bias a candidate must not raise


def calibrate_erasure(
    runtime: Any,
    model_hash: str,
    text: str,
    search: ErasureSearch | None = None,
    on_step: Callable[[Measurement, float], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Erasure:
    """Directions (`progress` reports their sentences), then the blocks and rank (module doc)."""
    search = search or ErasureSearch()
    cfg, bands = search.config, search.bands
    target = search.path or adapter_path(model_hash)
    obs, n_layer = observe_contrasts(runtime, progress=progress)
    weights = ModelWeights(runtime.info.path)
    workdir = target.parent if target.parent.is_dir() else None
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        trials = OutOfFold(runtime, weights, obs, n_layer, text, Path(tmp), search)
        try:
            every = list(range(n_layer))
            candidates = late_bands(every, bands)
            result = choose(trials, candidates, cfg, on_step, refuse=trials.bbq_rises)
        finally:
            trials.close()
    # The baseline erased nothing: its file still carries every block, for the guard to scale.
    shipped = trials.shipped(result.chosen.rank or DEFAULT_RANK)
    alphas = dict.fromkeys(result.chosen.blocks or shipped.blocks, 1.0)
    meta = {"model_hash": model_hash, "scale": result.strength}
    write_erasure(target, weights, shipped, alphas, meta)
    return Erasure(target, result.strength, alphas, result)
