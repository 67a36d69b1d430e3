"""Directions, erasure algebra and the scale search, against the fake back end (no llama.cpp)."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.backends.base import AdapterRuntime, ScoringRuntime
from edgekit.bias.controller import (
    ErasureConstraint,
    MitigationConfig,
    measure,
    require_runtime,
    search_scale,
)
from edgekit.bias.derive import derive, directions_from, observe, observe_contrasts
from edgekit.bias.erasure import (
    POINTS,
    Eraser,
    derive_directions,
    group_contrasts,
    leace_eraser,
    reader_pair,
)
from edgekit.bias.intervals import paired_reduction
from edgekit.bias.logprobs import LogProbScorer
from edgekit.bias.probes import build_suite
from edgekit.bias.scores import run_suite
from edgekit.errors import BiasError
from tests.fixtures.fake_bias_backend import FakeModel, FakeRuntime

TEXT = " ".join(["the river ran past the old mill and the town"] * 20)


def test_fake_implements_the_capability_protocols() -> None:
    rt = FakeRuntime()
    assert isinstance(rt, ScoringRuntime) and isinstance(rt, AdapterRuntime)
    assert require_runtime(rt) is rt
    with pytest.raises(BiasError):
        require_runtime(object())


def test_group_contrasts_differ_only_in_the_group() -> None:
    pairs = group_contrasts(build_suite("calibration").pairs[:3])
    assert len(pairs) == 6
    for a, b in pairs:
        assert a != b and a.split()[-1] == b.split()[-1]  # same attribute at the end


def test_directions_from_calibration_erase_the_group_contrast() -> None:
    rt = FakeRuntime(FakeModel(planted=2.0))
    pairs = group_contrasts(build_suite("calibration").pairs)
    states = rt.hidden_states(64, POINTS)
    obs = observe(states, rt.tokenize, pairs, [rt.tokenize(TEXT)])
    assert len(obs.contrasts) == 3 * len(POINTS)
    assert all(len(c) == len(pairs) for c in obs.contrasts.values())
    left = []
    for rank in (1, 4, 16):
        directions = derive_directions(obs, rank=rank)
        assert directions.blocks == [0, 1, 2] and directions.rank == rank
        site, eraser = next(iter(directions.erasers.items()))
        c = obs.contrasts[site]
        rest = c - (c @ eraser.readout.T) @ eraser.delta.T  # what the readers still see
        left.append(float((rest**2).sum() / (c**2).sum()))
    # The fake's group words share one planted direction but also differ at random: a higher
    # rank takes more of what separates them away.
    assert left[0] > left[1] > left[2] and left[2] < 0.2
    # derive() is the same through the runtime, with the project's calibration text and the
    # group lexicon, and says how far it is.
    seen: list[tuple[int, int]] = []
    assert derive(rt, rank=2, progress=lambda n, total: seen.append((n, total))).blocks == [0, 1, 2]
    total = seen[-1][1]
    done = [n for n, _ in seen]  # pairs are read in chunks, the texts one by one
    assert total > len(pairs) and done == sorted(set(done)) and done[-1] == total


def test_the_lexicon_given_replaces_the_group_lexicon() -> None:
    rt = FakeRuntime(FakeModel(planted=2.0))
    n_calibration = len(group_contrasts(build_suite("calibration").pairs))
    own = [("the woman sat down", "the man sat down")] * 3
    obs, n_layer = observe_contrasts(rt, lexicon=(own, ["gender"] * 3))
    assert n_layer == 3 and len(obs.labels) == n_calibration + 3
    assert all(len(c) == n_calibration + 3 for c in obs.contrasts.values())
    default, _ = observe_contrasts(rt)
    assert len(default.labels) > n_calibration + 3
    # derive() is these two steps with the group lexicon.
    mine = directions_from(default, n_layer, rank=2)
    theirs = derive(rt, rank=2)
    for site, eraser in theirs.erasers.items():
        np.testing.assert_allclose(eraser.readout, mine.erasers[site].readout, atol=1e-5)


def _concept_data(n: int = 4000, dim: int = 8) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """States with an anisotropic covariance, a large mean and a binary concept along one
    direction that also carries much unrelated variance (where least-change erasure matters)."""
    rng = np.random.default_rng(4)
    scales = np.array([10.0, 5.0, 3.0, 1.0, 1.0, 0.5, 0.5, 0.2])[:dim]
    z = rng.integers(0, 2, n)
    concept = np.zeros(dim)
    concept[0], concept[3] = 1.0, 1.0
    x = rng.standard_normal((n, dim)) * scales + 50.0 + np.outer(z, concept)
    return x, z, concept


def test_leace_eraser_removes_the_concept_keeps_the_mean_and_changes_least() -> None:
    x, _, concept = _concept_data()
    # Paired contrasts, as from sentences that differ only in the group: the concept + noise.
    noise = np.random.default_rng(5).standard_normal((60, len(concept)))
    contrasts = concept + 0.1 * noise
    mean, cov = x.mean(axis=0), np.cov(x, rowvar=False)
    eraser = leace_eraser(contrasts, mean, cov, rank=1, shrink=0.0)
    np.testing.assert_allclose(eraser.readout @ eraser.delta, np.eye(1), atol=1e-4)
    assert abs(float((eraser.readout @ mean)[0])) < 1e-3 * np.linalg.norm(mean)
    erased = x - (x @ eraser.readout.T) @ eraser.delta.T
    # What separates the classes is gone, and the mean is kept (no LoRA bias term needed).
    left = concept - eraser.delta @ (eraser.readout @ concept)
    assert np.linalg.norm(left) < 0.05 * np.linalg.norm(concept)
    np.testing.assert_allclose(erased.mean(axis=0), mean, atol=1e-3 * float(np.linalg.norm(mean)))
    # The orthogonal projection of the same mean contrast changes the states far more.
    d = contrasts.mean(axis=0)
    u = d / np.linalg.norm(d)
    centered = x - mean
    orthogonal_change = np.mean((centered @ u) ** 2)
    leace_change = np.mean(np.sum((x - erased) ** 2, axis=1))
    assert leace_change < 0.5 * orthogonal_change


def test_a_rank_as_wide_as_the_input_keeps_a_dimension_for_the_mean() -> None:
    x, _, _ = _concept_data()
    n = x.shape[1]
    contrasts = np.random.default_rng(6).standard_normal((3 * n, n))
    mean, cov = x.mean(axis=0), np.cov(x, rowvar=False)
    eraser = leace_eraser(contrasts, mean, cov, rank=2 * n)
    assert eraser.rank == n - 1
    np.testing.assert_allclose(eraser.readout @ eraser.delta, np.eye(n - 1), atol=1e-4)
    assert np.abs(eraser.readout @ mean).max() < 1e-3 * np.linalg.norm(mean)


def test_reader_pair_is_the_partial_erasure_of_the_input() -> None:
    rng = np.random.default_rng(2)
    w = rng.standard_normal((20, 12)).astype(np.float32)  # (n_out, n_in = n_embd)
    delta = rng.standard_normal((12, 2)).astype(np.float32)
    readout = np.linalg.pinv(delta).astype(np.float32)
    eraser = Eraser(delta, readout)
    for alpha in (1.0, 0.5):
        pair = reader_pair("blk.0.attn_q.weight", w, eraser, alpha)
        assert pair.a.shape == (2, 12) and pair.b.shape == (20, 2)
        x = rng.standard_normal(12)
        expected = w @ (x - alpha * delta @ (readout @ x))
        np.testing.assert_allclose((w + pair.b @ pair.a) @ x, expected, rtol=1e-4, atol=1e-4)
    # At scale 1 the reader no longer sees anything along delta.
    full = reader_pair("x", w, eraser, 1.0)
    assert np.abs((w + full.b @ full.a) @ delta).max() < 1e-3


def test_scale_search_erases_the_planted_bias_on_the_fake() -> None:
    rt = FakeRuntime(FakeModel(planted=2.0))
    scorer = LogProbScorer(rt.logits())
    constraint = ErasureConstraint(rt, __import__("pathlib").Path("fake.gguf"))
    steps: list[tuple[float, float]] = []
    result = search_scale(
        scorer,
        constraint,
        TEXT,
        MitigationConfig(max_perplexity_increase=10.0, max_accuracy_drop=1.0),
        on_step=lambda m, nxt: steps.append((m.strength, nxt)),
        ppl_tokens=(0, 1024),
    )
    assert result.baseline.strength == 0.0 and result.baseline.lean > 0.05
    assert result.strength > 0.5 and result.chosen.scores.bias < 0.5 * result.baseline.scores.bias
    assert steps[0] == (0.0, 1.0) and rt.model.scale == 0.0  # left at the base model
    # The held-out split sees the same erasure: a paired reduction well outside zero.
    heldout = build_suite("heldout")
    before = run_suite(scorer, heldout)
    rt.set_lora(constraint.path, result.strength)
    after = run_suite(scorer, heldout)
    change = paired_reduction(before, after, n=300)
    assert change["bias_reduction"].value > 0.25 and change["bias_reduction"].low > 0


def test_measure_applies_the_scale_it_reports() -> None:
    rt = FakeRuntime()
    scorer = LogProbScorer(rt.logits())
    constraint = ErasureConstraint(rt, __import__("pathlib").Path("fake.gguf"))
    m = measure(scorer, constraint, 0.75, build_suite("calibration"), TEXT, (0, 1024))
    assert m.strength == 0.75 and rt.lora_calls[-1][1] == 0.75 and m.perplexity > 1


def test_each_category_gets_its_share_of_the_rank() -> None:
    rng = np.random.default_rng(6)
    big = np.zeros((20, 8))
    big[:, 0], big[:, 1] = 10 + rng.standard_normal(20), 5 + rng.standard_normal(20)
    small = np.zeros((20, 8))
    small[:, 5] = 0.5 + 0.1 * rng.standard_normal(20)
    contrasts = np.concatenate([big, small])
    mean, cov = np.full(8, 3.0), np.eye(8)
    labels = ["age"] * 20 + ["religion"] * 20
    overall = leace_eraser(contrasts, mean, cov, rank=2, shrink=0.0)
    shared = leace_eraser(contrasts, mean, cov, rank=2, shrink=0.0, labels=labels)
    d = small.mean(axis=0)
    # The largest category takes both directions overall; with labels the small one keeps one.
    assert np.linalg.norm(d - overall.delta @ (overall.readout @ d)) > 0.9 * np.linalg.norm(d)
    assert np.linalg.norm(d - shared.delta @ (shared.readout @ d)) < 0.1 * np.linalg.norm(d)
    assert shared.rank == 2
