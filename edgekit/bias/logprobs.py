"""Log-probabilities of text spans on any back end's LogitSource: what every score reads."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from edgekit.backends.base import LogitSource, common_prefix, first_difference


@dataclass(frozen=True)
class SpanLogProb:
    """Sum of log-probabilities of the tokens after `start` (the scored span)."""

    total: float
    n_tokens: int

    @property
    def mean(self) -> float:
        return self.total / self.n_tokens if self.n_tokens else 0.0


Span = tuple[list[int], int]  # tokens, and the first scored position (>= 1: never the BOS)
Item = TypeVar("Item")

# Items per call of the back end, which packs a call's sequences into as few decodes as fit
# (several hundred short probes each); progress moves once per call.
ITEMS_PER_CALL = 32


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

    def span_logprobs(self, spans: Sequence[Span]) -> list[SpanLogProb]:
        """log p(tokens[start:] | tokens[:start]) for each span, scored together."""
        for tokens, start in spans:
            if not 1 <= start <= len(tokens):
                raise ValueError(f"span start {start} outside 1..{len(tokens)}")
        found = self.source.token_logprobs([(t, start - 1) for t, start in spans])
        return [SpanLogProb(float(lp.sum()), len(lp)) for lp in found]

    def item_totals(
        self,
        items: Sequence[Item],
        spans_of: Callable[[Item], list[Span]],
        progress: Callable[[int, int], None] | None = None,
    ) -> list[list[float]]:
        """Per item, the summed log-probability of each of its spans; then the cache is emptied."""
        out: list[list[float]] = []
        for lo in range(0, len(items), ITEMS_PER_CALL):
            chunk = items[lo : lo + ITEMS_PER_CALL]
            spans = [spans_of(item) for item in chunk]
            found = iter(self.span_logprobs([s for item in spans for s in item]))
            out.extend([next(found).total for _ in item] for item in spans)
            if progress:
                progress(lo + len(chunk), len(items))
        self.release()
        return out

    def span_logprob(self, tokens: Sequence[int], start: int) -> SpanLogProb:
        return self.span_logprobs([(list(tokens), start)])[0]

    def text_span(self, prefix: str, continuation: str) -> Span:
        """The tokens of prefix + continuation and where the continuation starts.

        Joint tokenization avoids scoring a split that the tokenizer would never produce; the
        span starts where the joint tokens stop matching the prefix's own tokens.
        """
        full = self.tokenize(prefix + continuation)
        start = max(1, common_prefix(full, self.tokenize(prefix)))
        return full, min(start, len(full) - 1)

    def pair_spans(self, a: str, b: str) -> tuple[Span, Span]:
        """Two sentences from their first differing token on.

        The shared prefix contributes the same amount to both, so it cancels in every comparison
        the metrics make; skipping it saves the logits (262k per token on the default model).
        """
        ta, tb = self.tokenize(a), self.tokenize(b)
        start = first_difference(ta, tb)
        return (ta, start), (tb, start)

    def text_logprob(self, prefix: str, continuation: str) -> SpanLogProb:
        """log p(continuation | prefix) (see text_span)."""
        return self.span_logprob(*self.text_span(prefix, continuation))
