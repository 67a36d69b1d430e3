"""Perplexity on real text: windows, the spans the search and the benchmarks read, intervals."""

from __future__ import annotations

import math

import pytest

from edgekit.bias.logprobs import LogProbScorer
from edgekit.bias.perplexity import (
    SEARCH_TOKENS,
    TextLoss,
    perplexity,
    perplexity_change,
    reported_loss,
    text_loss,
)
from tests.fixtures.fake_bias_backend import FakeLogits, FakeModel

WORDS = "the river ran past the old mill and the town slept while a boat went by".split()
TEXT = " ".join(WORDS[i % len(WORDS)] for i in range(2600))


def _scorer(scale: float = 0.0) -> LogProbScorer:
    model = FakeModel()
    model.scale = scale
    return LogProbScorer(FakeLogits(model))


def test_every_token_of_a_span_is_scored_once_in_bos_windows() -> None:
    loss = text_loss(_scorer(), TEXT, ((0, 600),), window=256)
    assert loss.tokens == (255, 255, 90)
    assert perplexity(_scorer(), TEXT, max_tokens=600) == pytest.approx(loss.perplexity)


class NoBos(FakeLogits):
    """A tokenizer that adds no BOS, as SmolLM2's GGUF does."""

    def tokenize(self, text: str, add_bos: bool = True) -> list[int]:
        return super().tokenize(text, add_bos=False)


def test_a_model_without_bos_scores_all_but_each_windows_first_token() -> None:
    loss = text_loss(LogProbScorer(NoBos(FakeModel())), TEXT, ((0, 600),), window=256)
    assert loss.tokens == (255, 255, 87)
    assert math.isfinite(loss.perplexity)


def test_reported_loss_reads_everything_but_the_search_tokens() -> None:
    n = len(_scorer().tokenize(TEXT, add_bos=False))
    low, high = SEARCH_TOKENS
    loss = reported_loss(_scorer(), TEXT)
    assert sum(loss.tokens) == n - (high - low)
    # The same windows as reading the two spans on their own.
    head = text_loss(_scorer(), TEXT, ((0, low),))
    tail = text_loss(_scorer(), TEXT, ((high, None),))
    assert loss.nll == pytest.approx(head.nll + tail.nll)


def test_perplexity_change_is_the_ratio_with_a_paired_interval() -> None:
    before = reported_loss(_scorer(), TEXT)
    after = reported_loss(_scorer(scale=1.0), TEXT)
    change = perplexity_change(before, after, n=300)
    assert change.value == pytest.approx(after.perplexity / before.perplexity - 1)
    assert change.low <= change.value <= change.high and change.high > change.low
    same = perplexity_change(before, before, n=300)
    assert same.value == 0 and same.low == same.high == 0


def test_a_uniform_loss_increase_is_measured_exactly() -> None:
    before = TextLoss((10.0, 20.0, 5.0), (10, 20, 5))
    after = TextLoss((11.0, 22.0, 5.5), (10, 20, 5))  # +0.1 nats on every token
    change = perplexity_change(before, after, n=200)
    assert change.value == pytest.approx(math.exp(0.1) - 1)
    assert change.low == pytest.approx(change.value) and change.high == pytest.approx(change.value)


def test_perplexity_change_refuses_different_windows() -> None:
    with pytest.raises(ValueError):
        perplexity_change(TextLoss((1.0,), (3,)), TextLoss((1.0, 2.0), (3, 4)))
