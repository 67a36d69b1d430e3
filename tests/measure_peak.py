"""Run the default model through edgekit's own run path with a prompt that fills the context,
then print the memory estimate and the measured peak RSS as JSON. Run in a fresh process so the
peak belongs to this run alone."""

from __future__ import annotations

import json
import sys

from edgekit.backends.base import SamplingParams
from edgekit.runner import open_runtime, plan_run

TEXT = "The river runs past the old mill, and the town grows along both of its banks. "


def main(n_ctx: int, generate: int = 16) -> None:
    plan = plan_run(None, "cpu", n_ctx)
    runtime = open_runtime(plan)
    tokens = runtime.tokenize(TEXT * (n_ctx // 8))[: n_ctx - generate]
    result = runtime.generate(tokens, SamplingParams(max_tokens=generate, temperature=0.0))
    print(
        json.dumps(
            {
                "n_ctx": n_ctx,
                "prompt_tokens": len(tokens),
                "estimate": plan.estimate.to_dict(),
                "peak_rss_bytes": result.stats.peak_rss_bytes,
            }
        )
    )


if __name__ == "__main__":
    main(int(sys.argv[1]))
