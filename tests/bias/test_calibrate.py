"""--mitigate's out-of-fold choice of blocks and rank: folds, candidates, the choice rule."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from edgekit.bias.calibrate import (
    FOLDS,
    choose,
    clearly_better,
    cross_fit,
    fold_of,
    late_bands,
    merged,
)
from edgekit.bias.controller import Measurement, MitigationConfig
from edgekit.bias.derive import directions_from, observe_contrasts
from edgekit.bias.erasure import Observations
from edgekit.bias.logprobs import LogProbScorer
from edgekit.bias.probes import build_suite
from edgekit.bias.scores import CategoryScore, PairResult, SuiteRun, SuiteScores, run_suite
from tests.fixtures.fake_bias_backend import FakeModel, FakeRuntime


def test_folds_partition_the_calibration_probes_by_source() -> None:
    suite = build_suite("calibration")
    rt = FakeRuntime(FakeModel(planted=2.0))
    obs, n_layer = observe_contrasts(rt)
    folds = cross_fit(obs, n_layer, suite, folds=2, ranks=(4,))[4]
    assert len(folds) == 2
    ids = [p.id for f in folds for p in f.suite.pairs]
    assert sorted(ids) == sorted(p.id for p in suite.pairs)
    assert sum(len(f.suite.questions) for f in folds) == len(suite.questions)
    for k, fold in enumerate(folds):
        # A source's probes all sit in one fold: its two frames never straddle the split.
        assert {fold_of(p.source, 2) for p in fold.suite.pairs} == {k}
        assert {fold_of(q.source, 2) for q in fold.suite.questions} == {k}
    shipped = directions_from(obs, n_layer, 4)
    site = next(iter(shipped.erasers))
    assert not np.allclose(folds[0].directions.erasers[site].delta, shipped.erasers[site].delta)


def test_without_drops_only_the_rows_of_the_named_sources() -> None:
    rt = FakeRuntime(FakeModel(planted=2.0))
    obs, _ = observe_contrasts(rt)
    pairs = build_suite("calibration").pairs
    gone = {pairs[0].source}
    n_gone = sum(2 for p in pairs if p.source in gone)  # two contrast rows per probe
    left = obs.without(gone)
    assert n_gone >= 2 and len(left.sources) == len(obs.sources) - n_gone
    assert gone.isdisjoint(left.sources) and "" in left.sources  # the lexicon stays
    for site, rows in left.contrasts.items():
        assert len(rows) == len(obs.contrasts[site]) - n_gone
    assert len(left.labels) == len(left.sources)
    with pytest.raises(ValueError, match="sources"):
        Observations(obs.contrasts, obs.statistics).without(gone)


def test_late_bands_run_from_all_blocks_to_the_last_band() -> None:
    assert late_bands(range(18), 3) == [tuple(range(18)), tuple(range(6, 18)), tuple(range(12, 18))]
    assert late_bands([0, 1, 2, 3], 2) == [(0, 1, 2, 3), (2, 3)]
    assert late_bands([0, 1], 5) == [(0, 1), (1,)]
    assert late_bands([], 3) == []


def test_merged_fold_runs_score_like_one_run() -> None:
    rt = FakeRuntime(FakeModel(planted=2.0))
    scorer = LogProbScorer(rt.logits())
    suite = build_suite("calibration")
    whole = run_suite(scorer, suite)
    parts = [
        SuiteRun(
            suite,
            tuple(p for p in whole.pairs if fold_of(p.probe.source) == k),
            tuple(q for q in whole.questions if fold_of(q.probe.source) == k),
        )
        for k in reversed(range(FOLDS))
    ]
    again = merged(parts)
    assert len(again.pairs) == len(whole.pairs) and len(again.questions) == len(whole.questions)
    assert again.scores().to_dict() == whole.scores().to_dict()


def _scores(bias: float) -> SuiteScores:
    """One category leaning toward the stereotypes by `bias` (P = A = bias)."""
    return SuiteScores((CategoryScore("gender", bias, bias, 0.5, 0.0, 0.0, 1, 1, 1),))


class Scripted:
    """Trials whose out-of-fold bias and perplexity are a given table of (blocks, rank)."""

    def __init__(self, table: dict[tuple[tuple[int, ...], int], tuple[float, float]]) -> None:
        self.table = table
        self.asked: list[tuple[tuple[int, ...], int]] = []

    def measure(self, blocks: Sequence[int], rank: int) -> Measurement:
        key = (tuple(blocks), rank)
        self.asked.append(key)
        bias, ppl = self.table.get(key, (0.2, 10.0))
        return Measurement(1.0 if rank else 0.0, _scores(bias), ppl, 0.0, tuple(blocks), rank)


def test_choose_takes_the_least_out_of_fold_bias_within_limits() -> None:
    every, late = (0, 1, 2, 3), (2, 3)
    trials = Scripted(
        {
            ((), 0): (0.20, 10.0),
            (every, 8): (0.10, 10.3),
            (every, 16): (0.05, 11.0),  # least bias, but perplexity +10%
            (every, 24): (0.09, 10.35),  # the cost is not monotone in the rank
            (late, 8): (0.12, 10.1),
            (late, 16): (0.08, 10.2),
            (late, 24): (0.07, 10.6),
        }
    )
    cfg = MitigationConfig(ranks=(8, 16, 24))
    seen: list[tuple[float, float]] = []
    result = choose(trials, [every, late], cfg, lambda m, nxt: seen.append((m.strength, nxt)))
    assert result.chosen.blocks == late and result.chosen.rank == 16 and result.strength == 1.0
    assert result.chosen.scores.bias == 0.08
    # Largest rank first; a smaller one only after a rank out of limits.
    assert trials.asked == [((), 0), (every, 24), (late, 24), (late, 16)]
    assert len(seen) == len(result.steps) + 1 and seen[0] == (0.0, 1.0)


def test_block_sets_stop_at_one_that_finds_no_less_bias() -> None:
    every, later, last = (0, 1, 2, 3), (1, 2, 3), (3,)
    table = {((), 0): (0.20, 10.0), (every, 8): (0.05, 10.1), (later, 8): (0.06, 10.1)}
    trials = Scripted({**table, (last, 8): (0.01, 10.0)})
    seen: list[Measurement] = []
    cfg = MitigationConfig(ranks=(8,))
    result = choose(trials, [every, later, last], cfg, lambda m, _: seen.append(m))
    assert (last, 8) not in trials.asked and result.chosen.blocks == every
    assert [m.blocks for m in seen] == [(), every, later]
    gaining = Scripted({**table, (later, 8): (0.04, 10.1), (last, 8): (0.045, 10.0)})
    choose(gaining, [every, later, last], cfg)
    assert (last, 8) in gaining.asked  # the middle set found less bias: the next is measured


def test_a_smaller_rank_is_tried_after_one_out_of_limits() -> None:
    every = (0, 1, 2, 3)
    trials = Scripted(
        {
            ((), 0): (0.20, 10.0),
            (every, 8): (0.10, 10.2),
            (every, 16): (0.05, 10.3),
            (every, 24): (0.04, 10.5),  # +5%, over the limit
        }
    )
    result = choose(trials, [every], MitigationConfig(ranks=(8, 16, 24)))
    assert result.chosen.rank == 16 and result.chosen.scores.bias == 0.05
    assert (every, 8) not in trials.asked  # rank 16 fits: rank 8 erases a subset of it


def test_an_overshoot_tries_the_smaller_ranks() -> None:
    every = (0, 1, 2, 3)
    trials = Scripted(
        {
            ((), 0): (0.20, 10.0),
            (every, 16): (-0.10, 10.1),  # leans against the stereotypes past the tolerance
            (every, 8): (0.05, 10.1),
        }
    )
    result = choose(trials, [every], MitigationConfig(ranks=(8, 16)))
    assert trials.asked == [((), 0), (every, 16), (every, 8)]
    assert result.chosen.rank == 8


def test_a_refused_candidate_counts_as_out_of_limits() -> None:
    every = (0, 1, 2, 3)
    trials = Scripted(
        {
            ((), 0): (0.20, 10.0),
            (every, 16): (0.04, 10.1),  # raises BBQ bias: refused
            (every, 8): (0.06, 10.1),
        }
    )

    def refuse(m: Measurement, base: Measurement) -> bool:
        return m.rank == 16

    result = choose(trials, [every], MitigationConfig(ranks=(8, 16)), refuse=refuse)
    assert result.chosen.rank == 8 and (every, 8) in trials.asked


def test_choose_keeps_the_base_model_when_nothing_helps() -> None:
    trials = Scripted({((), 0): (0.05, 10.0)})  # every candidate: bias 0.2
    result = choose(trials, [(0, 1)], MitigationConfig(ranks=(8,)))
    assert result.pick == -1 and result.strength == 0.0 and result.chosen is result.baseline


def test_the_most_complete_candidate_wins_unless_beaten_beyond_noise() -> None:
    every, late = (0, 1, 2, 3), (2, 3)
    table = {
        ((), 0): (0.20, 10.0),
        (every, 8): (0.100, 10.1),
        (every, 16): (0.050, 10.3),
        (late, 16): (0.045, 10.1),  # the least bias, by less than the noise (0.02 here)
    }

    def by_two_points(a: Measurement, b: Measurement) -> bool:
        return a.scores.bias < b.scores.bias - 0.02

    cfg = MitigationConfig(ranks=(8, 16))
    result = choose(Scripted(table), [every, late], cfg, better=by_two_points)
    assert result.chosen.blocks == every and result.chosen.rank == 16
    table[(late, 16)] = (0.020, 10.0)  # now beyond the noise
    result = choose(Scripted(table), [every, late], cfg, better=by_two_points)
    assert result.chosen.blocks == late and result.chosen.rank == 16


def _measured(run: SuiteRun) -> Measurement:
    return Measurement(1.0, run.scores(), 10.0, 0.0, (0,), 8, run)


def test_clearly_better_needs_nearly_every_paired_resample_to_agree() -> None:
    rt = FakeRuntime(FakeModel(planted=2.0))
    scorer = LogProbScorer(rt.logits())
    suite = build_suite("calibration")
    biased = run_suite(scorer, suite)
    rt.set_lora(Path("erasure.gguf"), 1.0)  # the fake's exact erasure of the planted direction
    erased = run_suite(scorer, suite)
    assert clearly_better(_measured(erased), _measured(biased))
    assert not clearly_better(_measured(biased), _measured(erased))
    assert not clearly_better(_measured(biased), _measured(biased))
    # Less bias on one association alone: a resample without it shows no difference.
    first = biased.pairs[0]
    lean = first.association
    nudged = (first.logprobs[0] - lean, *first.logprobs[1:])
    one = SuiteRun(suite, (PairResult(first.probe, nudged), *biased.pairs[1:]), biased.questions)
    assert one.scores().bias < biased.scores().bias
    assert not clearly_better(_measured(one), _measured(biased))


def test_a_measurement_says_what_was_tried() -> None:
    s = _scores(0.1)
    every = tuple(range(18))
    assert Measurement(1.0, s, 30.0, 1.0, every, 108).label == "blocks 0-17, rank 108, scale 1.000"
    assert Measurement(0.0, s, 30.0, 1.0, ()).label == "base, scale 0.000"
    assert Measurement(2.0, s, 30.0, 1.0).label == "scale 2.000"  # a control vector's step
