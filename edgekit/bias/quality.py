"""Perplexity on real text: what a constraint must not cost."""

from __future__ import annotations

import math
from pathlib import Path

from edgekit.bias.scoring import LogProbScorer

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


def perplexity(
    scorer: LogProbScorer, text: str, window: int = 256, max_tokens: int = 1024, offset: int = 0
) -> float:
    """exp(mean negative log-likelihood) over tokens offset..offset+max_tokens of text.

    Calibration and reporting read different token ranges of the same text, so the mitigation
    search never tunes on the text the benchmark reports.

    Non-overlapping windows of `window` tokens, each with its own BOS; every token after the BOS
    is scored. Short windows keep it cheap on a Pi; the comparison before/after a constraint uses
    the same windows, which is what matters.
    """
    tokens = scorer.tokenize(text, add_bos=False)[offset : offset + max_tokens]
    bos = scorer.tokenize("", add_bos=True)
    nll, n = 0.0, 0
    for lo in range(0, len(tokens), window - len(bos)):
        chunk = bos + tokens[lo : lo + window - len(bos)]
        if len(chunk) <= len(bos):
            break
        span = scorer.span_logprob(chunk, len(bos))
        nll -= span.total
        n += span.n_tokens
    scorer.release()
    return math.exp(nll / n) if n else float("nan")
