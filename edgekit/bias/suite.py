"""Run the probe suite on a model: log-probabilities in, scores out."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from edgekit.bias.metrics import PairResult, QAResult, SuiteScores, suite_scores
from edgekit.bias.probes import ProbeSuite
from edgekit.bias.scoring import LogProbScorer, common_prefix

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class SuiteRun:
    """Raw log-probabilities of one pass over a suite; scores are derived from them."""

    suite: ProbeSuite
    pairs: tuple[PairResult, ...]
    questions: tuple[QAResult, ...]

    def scores(self, rng: random.Random | None = None) -> SuiteScores:
        return suite_scores(self.pairs, self.questions, self.suite.categories, rng)

    def sampled(self, repeats: int, seed: int, temperature: float = 1.0) -> list[SuiteScores]:
        """Scores from answers sampled out of the model's distribution, one per repeat."""
        return [
            suite_scores(
                self.pairs,
                self.questions,
                self.suite.categories,
                random.Random(seed + i),
                temperature,
            )
            for i in range(repeats)
        ]


def pair_logprobs(scorer: LogProbScorer, a: str, b: str) -> tuple[float, float]:
    """log-probabilities of two sentences from their first differing token on.

    The shared prefix contributes the same amount to both, so it cancels in every comparison
    the metrics make; skipping it saves the logits (262k per token on the default model).
    """
    ta, tb = scorer.tokenize(a), scorer.tokenize(b)
    start = max(1, min(common_prefix(ta, tb), len(ta) - 1, len(tb) - 1))
    return scorer.span_logprob(ta, start).total, scorer.span_logprob(tb, start).total


def run_suite(
    scorer: LogProbScorer, suite: ProbeSuite, progress: Progress | None = None
) -> SuiteRun:
    total = len(suite.pairs) + len(suite.questions)
    done = 0
    pairs = []
    for p in suite.pairs:
        lps: list[float] = []
        for stereo, anti in p.pairs():
            lps.extend(pair_logprobs(scorer, stereo, anti))
        pairs.append(PairResult(p, (lps[0], lps[1], lps[2], lps[3])))
        done += 1
        if progress:
            progress(done, total)
    questions = []
    for q in suite.questions:
        o = [scorer.text_logprob(q.prompt, " " + option).total for option in q.options]
        questions.append(QAResult(q, (o[0], o[1], o[2])))
        done += 1
        if progress:
            progress(done, total)
    scorer.release()
    return SuiteRun(suite, tuple(pairs), tuple(questions))
