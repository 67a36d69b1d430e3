"""Perplexity on real text: the cost side of every mitigation (search slice and reported rest)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgekit.bias.intervals import Interval, centred_interval
from edgekit.bias.logprobs import LogProbScorer

# Human-written prose that is on nearly every Debian / Raspberry Pi OS machine; the runtime
# reads it from disk (edgekit ships no text of its own for this).
REFERENCE_TEXTS = (
    Path("/usr/share/common-licenses/GPL-3"),
    Path("/usr/share/common-licenses/Apache-2.0"),
)


def reference_text() -> tuple[Path, str] | None:
    for p in REFERENCE_TEXTS:
        if p.is_file():
            return p, p.read_text(encoding="utf-8", errors="replace")
    return None


# The mitigation search reads this token range of the reference text; the benchmarks report
# perplexity on the rest, so the search never tunes on the text it is judged by.
SEARCH_TOKENS = (1024, 2048)


@dataclass(frozen=True)
class TextLoss:
    """Summed negative log-likelihood and token count per window of one pass over a text."""

    nll: tuple[float, ...]
    tokens: tuple[int, ...]

    @property
    def perplexity(self) -> float:
        n = sum(self.tokens)
        return math.exp(sum(self.nll) / n) if n else float("nan")


def text_loss(
    scorer: LogProbScorer,
    text: str,
    spans: Sequence[tuple[int, int | None]] = ((0, 1024),),
    window: int = 256,
) -> TextLoss:
    """Per-window loss over the token spans [start, stop) of text (stop None: to the end).

    Non-overlapping windows of `window` tokens, each with its own BOS; every token after the BOS
    is scored. A model that adds no BOS (SmolLM2) has its window's first token as context only.
    Short windows keep it cheap on a Pi; a comparison before/after a constraint uses the same
    windows, which is what matters.
    """
    tokens = scorer.tokenize(text, add_bos=False)
    bos = scorer.tokenize("", add_bos=True)
    step = window - len(bos)
    first = max(1, len(bos))  # the first token scored needs one before it
    windows = [
        (bos + tokens[start:stop][lo : lo + step], first)
        for start, stop in spans
        for lo in range(0, len(tokens[start:stop]), step)
    ]
    found = scorer.span_logprobs(windows)
    scorer.release()
    return TextLoss(tuple(-s.total for s in found), tuple(s.n_tokens for s in found))


def perplexity(
    scorer: LogProbScorer, text: str, window: int = 256, max_tokens: int = 1024, offset: int = 0
) -> float:
    """exp(mean negative log-likelihood) over tokens offset..offset+max_tokens of text."""
    return text_loss(scorer, text, ((offset, offset + max_tokens),), window).perplexity


def reported_loss(scorer: LogProbScorer, text: str) -> TextLoss:
    """The loss the benchmarks report: every token of the text outside SEARCH_TOKENS.

    All of it, not one 1024-token slice: per token the change under an erasure adapter has a
    standard deviation of ~0.46 nats (Gemma 3 270M on GPL-3), so a 1024-token slice pins a
    perplexity change down to about +-1.4% (one standard error), and two such slices of the same
    text measured +6.1% and +3.3% for the same adapter.
    """
    low, high = SEARCH_TOKENS
    return text_loss(scorer, text, ((0, low), (high, None)))


def perplexity_change(before: TextLoss, after: TextLoss, n: int = 1000, seed: int = 0) -> Interval:
    """after / before - 1, with a paired bootstrap interval over the windows."""
    if before.tokens != after.tokens:
        raise ValueError("perplexity_change compares two passes over the same windows")
    b, a, k = np.array(before.nll), np.array(after.nll), np.array(before.tokens, dtype=np.float64)
    idx = np.random.default_rng(seed).integers(0, len(k), (n, len(k)))
    counts = k[idx].sum(axis=1)
    draws = np.exp((a[idx].sum(axis=1) - b[idx].sum(axis=1)) / counts) - 1
    return centred_interval(after.perplexity / before.perplexity - 1, draws)
