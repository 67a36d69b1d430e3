"""Log-probabilities of text spans on any back end's LogitSource: what every score reads."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edgekit.backends.base import FloatArray, LogitSource, common_prefix


@dataclass(frozen=True)
class SpanLogProb:
    """Sum of log-probabilities of the tokens after `start` (the scored span)."""

    total: float
    n_tokens: int

    @property
    def mean(self) -> float:
        return self.total / self.n_tokens if self.n_tokens else 0.0


def log_softmax_at(logits: FloatArray, token: int) -> float:
    """log p(token) from one row of raw logits (max-shifted; the sum accumulates in float64)."""
    top = float(logits.max())
    total = float(np.exp(logits - np.float32(top)).sum(dtype=np.float64))
    return float(logits[token]) - top - math.log(total)


class LogProbScorer:
    """Log-probabilities of text spans on any back end's LogitSource (Capability.SCORE)."""

    def __init__(self, source: LogitSource) -> None:
        self.source = source

    def tokenize(self, text: str, add_bos: bool = True) -> list[int]:
        return self.source.tokenize(text, add_bos)

    def release(self) -> None:
        self.source.release()

    def close(self) -> None:
        self.source.close()

    def span_logprob(self, tokens: Sequence[int], start: int) -> SpanLogProb:
        """log p(tokens[start:] | tokens[:start]); start >= 1 (the BOS is never scored)."""
        if not 1 <= start <= len(tokens):
            raise ValueError(f"span start {start} outside 1..{len(tokens)}")
        rows = self.source.logits_from(tokens, start - 1)
        total = sum(log_softmax_at(rows[i], tokens[start + i]) for i in range(len(tokens) - start))
        return SpanLogProb(total, len(tokens) - start)

    def text_logprob(self, prefix: str, continuation: str) -> SpanLogProb:
        """log p(continuation | prefix), tokenizing prefix + continuation jointly.

        Joint tokenization avoids scoring a split that the tokenizer would never produce; the
        span starts where the joint tokens stop matching the prefix's own tokens.
        """
        full = self.tokenize(prefix + continuation)
        start = max(1, common_prefix(full, self.tokenize(prefix)))
        return self.span_logprob(full, min(start, len(full) - 1))
