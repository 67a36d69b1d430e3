"""Bias: measure a model's social biases, erase them with a LoRA adapter, keep it in check.

Modules, one per concept:

data, probes   edgekit's own suite (likelihood pairs, questions) and its calibration/held-out split
scores         log-probabilities -> bias scores with bootstrap intervals; perplexity
suites         the registry of suites (edgekit's own, BBQ, CrowS-Pairs read from the user's
               files): one module each with its reader, scorer, history shape and tables
mitigate       --mitigate: calibrate the erasure adapter, judge it on the held-out split
erasure        group directions per block -> a rank-k erasure LoRA in llama.cpp's GGUF format
controller     the feedback loop: the adapter scale from measured bias at run time
calibrate      --mitigate: the adapter's blocks and rank, judged on folds its directions never saw
guard, outputs `run --bias-guard` around each generation, and its output scorers
store          the SQLite history and what the dashboard reads

Everything talks to a model through the back ends' capability protocols (Capability.SCORE,
Capability.ADAPTERS in edgekit.backends), never to llama.cpp directly.
"""

from edgekit.bias.calibrate import calibrate_erasure
from edgekit.bias.controller import (
    Erasure,
    LoopConfig,
    MitigationConfig,
    load_or_derive,
    require_runtime,
)
from edgekit.bias.erasure import check_adapter
from edgekit.bias.guard import BiasGuard, GuardedRuntime, guard_runtime
from edgekit.bias.history import latest_scores
from edgekit.bias.intervals import bootstrap, paired_reduction
from edgekit.bias.logprobs import LogProbScorer
from edgekit.bias.perplexity import perplexity, reference_text
from edgekit.bias.probes import build_suite
from edgekit.bias.scores import SuiteRun, SuiteScores, run_suite
from edgekit.bias.store import model_fingerprint

__all__ = [
    "BiasGuard",
    "Erasure",
    "GuardedRuntime",
    "LogProbScorer",
    "LoopConfig",
    "MitigationConfig",
    "SuiteRun",
    "SuiteScores",
    "bootstrap",
    "build_suite",
    "calibrate_erasure",
    "check_adapter",
    "guard_runtime",
    "latest_scores",
    "load_or_derive",
    "model_fingerprint",
    "paired_reduction",
    "perplexity",
    "reference_text",
    "require_runtime",
    "run_suite",
]
