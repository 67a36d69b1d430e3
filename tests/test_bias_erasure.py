"""Directions, erasure algebra and the scale search, against the fake back end (no llama.cpp)."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.backends.base import AdapterRuntime, ScoringRuntime
from edgekit.bias.controller import (
    ErasureConstraint,
    MitigationConfig,
    derive,
    measure,
    require_runtime,
    search_scale,
)
from edgekit.bias.erasure import embedding_pair, erasure_pair, group_contrasts, subspace
from edgekit.bias.probes import build_suite
from edgekit.bias.scores import LogProbScorer, paired_reduction, run_suite
from edgekit.errors import BiasError
from tests.fake_bias_backend import FakeModel, FakeRuntime

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


def test_directions_from_calibration_recover_the_planted_one() -> None:
    rt = FakeRuntime(FakeModel(planted=2.0))
    directions = derive(rt, max_rank=4)
    assert sorted(directions.bases) == [0, 1, 2]
    for basis in directions.bases.values():
        captured = np.linalg.norm(basis @ rt.model.u)  # |projection of u on the subspace|
        assert captured > 0.9


def test_subspace_rank_follows_the_energy() -> None:
    rng = np.random.default_rng(1)
    u = rng.standard_normal(16)
    one = np.outer(rng.standard_normal(30), u) + 0.01 * rng.standard_normal((30, 16))
    basis, energy = subspace(one.astype(np.float32), max_rank=8, energy=0.9)
    assert basis.shape == (1, 16) and energy > 0.9
    basis, _ = subspace(rng.standard_normal((30, 16)).astype(np.float32), max_rank=5, energy=0.99)
    assert basis.shape == (5, 16)


def test_erasure_pair_is_the_projection_and_survives_a_post_norm() -> None:
    rng = np.random.default_rng(2)
    w = rng.standard_normal((12, 20)).astype(np.float32)  # (n_out = n_embd, n_in)
    basis, _ = np.linalg.qr(rng.standard_normal((12, 2)))
    basis = basis.T.astype(np.float32)  # (k, n_embd), orthonormal rows
    plain = erasure_pair("blk.0.attn_output.weight", w, basis, None, 1.0)
    erased = w + plain.b @ plain.a
    np.testing.assert_allclose(erased, w - basis.T @ (basis @ w), atol=1e-5)
    assert np.abs(basis @ erased).max() < 1e-4
    half = erasure_pair("x", w, basis, None, 0.5)
    np.testing.assert_allclose(w + half.b @ half.a, w - 0.5 * basis.T @ (basis @ w), atol=1e-5)
    # Post-norm g * y / rms(y): the written vector must have no component along U.
    g = rng.uniform(0.5, 2.0, 12).astype(np.float32)
    normed = erasure_pair("x", w, basis, g, 1.0)
    x = rng.standard_normal(20)
    y = (w + normed.b @ normed.a) @ x
    written = g * y / np.sqrt(np.mean(y**2))
    assert np.abs(basis @ written).max() < 1e-4


def test_embedding_pair_uses_llama_cpp_flipped_layout() -> None:
    rng = np.random.default_rng(3)
    e = rng.standard_normal((50, 12)).astype(np.float32)  # (n_vocab, n_embd)
    basis = np.linalg.qr(rng.standard_normal((12, 3)))[0].T.astype(np.float32)
    pair = embedding_pair(e, basis, 1.0)
    assert pair.a.shape == (50, 3) and pair.b.shape == (12, 3)
    token = 7  # llama.cpp: row = E[token] + B @ A[token]
    row = e[token] + pair.b @ pair.a[token]
    assert np.abs(basis @ row).max() < 1e-4


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
        ppl_offset=0,
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
    m = measure(scorer, constraint, 0.75, build_suite("calibration"), TEXT, 0)
    assert m.strength == 0.75 and rt.lora_calls[-1][1] == 0.75 and m.perplexity > 1
