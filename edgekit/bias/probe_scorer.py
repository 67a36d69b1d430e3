"""An output scorer that asks the model itself: how stereotyped is it, right after this output?

For each category whose groups the output mentions, a few calibration likelihood probes are
scored with the output as their context, under whatever constraint is active; the output's bias
is max(0, mean of tanh(d/4)) over those probes (metrics.py's pair preference). Unlike the lexicon
scorer it sees stereotypes in any wording and it responds to the constraint itself (a stronger
constraint lowers it), at the price of model passes: the output is decoded once and each probe
sentence adds its few differing tokens. After scoring, the chat prompt is re-evaluated on the
next turn (the scorer used the context's cache).
"""

from __future__ import annotations

import math
from typing import Any

from edgekit.bias.lexicon import OutputBias, mentioned_categories
from edgekit.bias.metrics import PairResult
from edgekit.bias.probes import PairProbe, build_suite
from edgekit.bias.scoring import LogProbScorer
from edgekit.bias.suite import pair_logprobs


class ProbeScorer:
    name = "probe"

    def __init__(self, runtime: Any, probes_per_category: int = 2, max_context_chars: int = 1200):
        self.scorer = LogProbScorer(runtime.llm)
        self.max_context_chars = max_context_chars
        chosen: dict[str, list[PairProbe]] = {}
        for p in build_suite("calibration").pairs:
            if len(chosen.setdefault(p.category, [])) < probes_per_category:
                chosen[p.category].append(p)
        self.probes = chosen

    def score(self, text: str) -> OutputBias:
        categories = mentioned_categories(text)
        if not categories:
            return OutputBias(0.0, 0, 0)
        context = text[-self.max_context_chars :].strip() + "\n\n"
        prefs: list[float] = []
        per_category: dict[str, int] = {}
        for c in categories:
            for probe in self.probes.get(c, []):
                lps: list[float] = []
                for stereo, anti in probe.pairs():
                    lps.extend(pair_logprobs(self.scorer, context + stereo, context + anti))
                result = PairResult(probe, (lps[0], lps[1], lps[2], lps[3]))
                prefs.append(math.tanh(result.association / 4))
                per_category[c] = per_category.get(c, 0) + int(result.association > 0)
        self.scorer.release()
        mean = sum(prefs) / len(prefs) if prefs else 0.0
        leaning = sum(1 for p in prefs if p > 0)
        return OutputBias(max(0.0, mean), leaning, len(prefs) - leaning, per_category)
