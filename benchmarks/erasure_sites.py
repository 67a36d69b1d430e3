"""Where the erasure pays: held-out bias and perplexity per set of erased sites (default model).

The directions are derived once (calibration pairs and the group lexicon, as `bias --mitigate`
does), then each variant writes its adapter and is measured at scale 1:

- O, all blocks: the shipped adapter (rank DEFAULT_RANK at every block's attention output
  matrix, erasing what attention moved);
- V, all blocks: the earlier site, the input of the value matrix (the normalized stream);
- V + K, all blocks: the keys too, which cuts group-keyed attention at the earlier site;
- O, one third of the blocks at a time: which blocks buy the reduction, which cost perplexity;
- O, all blocks, half the rank: fewer directions per category;
- O, lexicon without held-out groups: every lexicon pair naming a group that any held-out
  sentence names is left out, so the directions never saw a held-out group's word.

Columns: held-out bias (with the paired bootstrap interval of its reduction), the mean |P|
(sentence pairs) and |A| (ambiguous questions) over categories, disambiguated accuracy, and
perplexity on every GPL-3 token outside 1024-2047 (what bias_loop reports, with a paired window
bootstrap interval) and on 1024-2047 alone (the slice the scale search reads). Nothing here is a
target; bias_loop.py checks those.
"""

from __future__ import annotations

import argparse
import re
import tempfile
from pathlib import Path
from statistics import fmean
from typing import Any

import gguf
import numpy as np

from benchmarks._common import console, print_table, with_interval, write_json
from edgekit.backends.runner import open_runtime, plan_run
from edgekit.bias.controller import ErasureConstraint, require_runtime, write_erasure
from edgekit.bias.derive import DEFAULT_RANK, directions_from, observe_contrasts
from edgekit.bias.erasure import READERS, Directions, ModelWeights
from edgekit.bias.intervals import paired_reduction
from edgekit.bias.lexicon import lexicon_contrasts
from edgekit.bias.logprobs import LogProbScorer
from edgekit.bias.perplexity import (
    SEARCH_TOKENS,
    perplexity_change,
    reference_text,
    reported_loss,
    text_loss,
)
from edgekit.bias.probes import ProbeSuite, build_suite
from edgekit.bias.scores import SuiteRun, run_suite

_T = gguf.MODEL_TENSOR
VALUES = {"attn_norm": (_T.ATTN_V,)}
WITH_KEYS = {"attn_norm": (_T.ATTN_V, _T.ATTN_K)}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true", help="only the shipped site and the earlier one")
    return p.parse_args()


def lexicon_without(suite: ProbeSuite) -> tuple[list[tuple[str, str]], list[str]]:
    """The lexicon's contrasts, less every group pair with a word that a sentence of `suite`
    contains ("old man" goes where "man" is held out: the directions never read the word)."""
    texts = [s for p in suite.pairs for pair in p.pairs() for s in pair]
    texts += [q.prompt + " " + " ".join(q.options) for q in suite.questions]
    seen = set(re.findall(r"[\w'-]+", " ".join(texts).lower()))

    def named(group: str) -> bool:
        return any(w in seen for w in re.findall(r"[\w'-]+", group.lower()))

    return lexicon_contrasts(leave_out=named)


def measure(scorer: LogProbScorer, text: str) -> dict[str, Any]:
    return {
        "run": run_suite(scorer, build_suite("heldout")),
        "reported": reported_loss(scorer, text),
        "ppl_search": text_loss(scorer, text, (SEARCH_TOKENS,)).perplexity,
    }


def summary(name: str, m: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    run: SuiteRun = m["run"]
    scores = run.scores()
    cats = scores.categories
    return {
        "variant": name,
        "bias": scores.bias,
        "bias_reduction": paired_reduction(base["run"], run)["bias_reduction"].to_dict(),
        "mean_abs_pair_bias": fmean(abs(c.pair_bias) for c in cats),
        "mean_abs_ambiguity_bias": fmean(abs(c.ambiguity_bias) for c in cats),
        "disambiguated_accuracy": scores.disambiguated_accuracy,
        "perplexity_reported": m["reported"].perplexity,
        "perplexity_search": m["ppl_search"],
        "perplexity_reported_change": perplexity_change(base["reported"], m["reported"]).to_dict(),
        "perplexity_search_change": m["ppl_search"] / base["ppl_search"] - 1,
    }


def main() -> int:
    args = parse_args()
    runtime = require_runtime(open_runtime(plan_run(None, "cpu", 512)))
    found = reference_text()
    if found is None:
        console.print("no reference text (/usr/share/common-licenses/GPL-3) on this machine")
        return 1
    text = found[1]
    weights = ModelWeights(runtime.info.path)
    console.print("observing the calibration pairs and the group lexicon ...")
    obs, n_layer = observe_contrasts(runtime, points=(*READERS, *VALUES))
    thirds = [[int(b) for b in t] for t in np.array_split(np.arange(n_layer), 3)]
    everywhere = dict.fromkeys(range(n_layer), 1.0)
    shipped = directions_from(obs, n_layer)
    variants: list[tuple[str, Directions, dict[int, float], Any]] = [
        ("O, all blocks (shipped)", shipped, everywhere, READERS),
        ("V, all blocks (the earlier site)", shipped, everywhere, VALUES),
    ]
    if not args.quick:
        variants.append(("V + K, all blocks", shipped, everywhere, WITH_KEYS))
        for t in thirds:
            name = f"O, blocks {t[0]}-{t[-1]}"
            variants.append((name, shipped, dict.fromkeys(t, 1.0), READERS))
        half = DEFAULT_RANK // 2
        fewer = directions_from(obs, n_layer, half)
        variants.append((f"O, rank {half}", fewer, everywhere, READERS))
        console.print("observing again without the held-out groups' lexicon pairs ...")
        lexicon = lexicon_without(build_suite("heldout"))
        unseen = directions_from(*observe_contrasts(runtime, lexicon=lexicon))
        name = f"O, lexicon without held-out groups ({len(lexicon[0])} sentence pairs)"
        variants.append((name, unseen, everywhere, READERS))
    scorer = LogProbScorer(runtime.logits())
    with tempfile.TemporaryDirectory() as tmp:
        base = measure(scorer, text)
        results = [summary("base model", base, base)]
        for n, (name, directions, alphas, readers) in enumerate(variants):
            console.print(f"[dim]{name} ...[/dim]")
            path = Path(tmp) / f"variant-{n}.gguf"
            write_erasure(path, weights, directions, alphas, {}, readers)
            constraint = ErasureConstraint(runtime, path)
            constraint.apply(1.0)
            try:
                results.append(summary(name, measure(scorer, text), base))
            finally:
                constraint.apply(0.0)
    scorer.close()
    rows = []
    for r in results:
        red = r["bias_reduction"]
        rows.append(
            (
                r["variant"],
                f"{r['bias']:.3f}",
                with_interval(red, "{:.0%}"),
                f"{r['mean_abs_pair_bias']:.3f}",
                f"{r['mean_abs_ambiguity_bias']:.3f}",
                f"{r['disambiguated_accuracy']:.1%}",
                f"{r['perplexity_reported']:.2f} "
                f"({with_interval(r['perplexity_reported_change'], '{:+.1%}')})",
                f"{r['perplexity_search']:.2f} ({r['perplexity_search_change']:+.1%})",
            )
        )
    columns = ["variant", "held-out bias", "reduction [95%]", "|P|", "|A|", "disamb. acc"]
    columns += ["ppl, all but 1024-2047 [95%]", "ppl 1024-2047"]
    print_table("Erasure sites at scale 1 (held-out split)", columns, rows)
    model = str(runtime.info.path)
    payload = {"model": model, "quick": args.quick, "rank": DEFAULT_RANK, "results": results}
    write_json("erasure_sites", payload)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
