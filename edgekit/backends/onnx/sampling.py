"""Next-token sampling in numpy with llama-cli's flags, for back ends that only give logits.

The chain follows llama.cpp's default order: repetition penalty, top-k, top-p, min-p, then the
temperature-scaled draw. Temperature <= 0 is greedy (argmax), which the tests rely on to compare
token for token with PyTorch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from edgekit.backends.base import SamplingParams

F32 = npt.NDArray[np.float32]
RANDOM_SEED = 0xFFFFFFFF  # llama.cpp's "pick a seed for me"


def make_rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(None if seed == RANDOM_SEED else seed)


def penalize(logits: F32, history: Sequence[int], penalty: float) -> F32:
    """llama.cpp's repetition penalty: seen tokens' logits move towards less likely."""
    if penalty == 1.0 or not history:
        return logits
    out = logits.copy()
    seen = np.unique(np.asarray(history, dtype=np.int64))
    vals = out[seen]
    out[seen] = np.where(vals > 0, vals / penalty, vals * penalty)
    return out


def _softmax(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    e = np.exp(x - x.max())
    out: npt.NDArray[np.float64] = e / e.sum()
    return out


def sample_next(
    logits: F32, params: SamplingParams, rng: np.random.Generator, history: Sequence[int] = ()
) -> int:
    logits = penalize(logits, history, params.repeat_penalty)
    if params.temperature <= 0:
        return int(np.argmax(logits))
    k = params.top_k if 0 < params.top_k < logits.shape[-1] else logits.shape[-1]
    # Candidates sorted by logit, best first; only the top k survive.
    top = np.argpartition(-logits, k - 1)[:k] if k < logits.shape[-1] else np.arange(k)
    top = top[np.argsort(-logits[top], kind="stable")]
    values = logits[top].astype(np.float64)
    probs = _softmax(values)
    keep = len(top)
    if 0 < params.top_p < 1:
        keep = min(keep, int(np.searchsorted(np.cumsum(probs), params.top_p)) + 1)
    if params.min_p > 0:
        keep = min(keep, max(1, int((probs >= params.min_p * probs[0]).sum())))
    final = _softmax(values[:keep] / params.temperature)
    return int(top[rng.choice(keep, p=final)])
