"""`edgekit eval`'s metrics, whatever the back end: perplexity, mean KL divergence
KL(reference || model) of the next-token distributions, top-1 agreement, size and bits per weight.

A back end feeds every model the same windows in lockstep, a block of positions at a time, and
folds each block into running sums here, so the reference's full-vocabulary distribution never
needs to be stored: with a 262k vocabulary that would be 1 MiB per token.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from edgekit.errors import EvalError

F32 = npt.NDArray[np.float32]


@dataclass
class EvalResult:
    model: str
    file_size: int
    bits_per_weight: float
    n_tokens: int = 0
    ppl: float = 0.0
    kld: float = 0.0
    top1: float = 0.0
    decode_tok_s: float | None = None
    kld_windows: list[float] = field(default_factory=list)  # each window's mean, for its noise

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class EvalReport:
    """Every model's row against the reference, on one text: what `eval` prints and what
    `convert` appends to its report."""

    text: str  # where the evaluation text came from
    reference: EvalResult
    models: list[EvalResult]

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "reference": self.reference.to_dict(),
            "models": [r.to_dict() for r in self.models],
        }


class ModelInfo(Protocol):
    @property
    def path(self) -> Path: ...
    @property
    def file_size(self) -> int: ...
    @property
    def bits_per_weight(self) -> float: ...


@dataclass
class RunningSums:
    nll: float = 0.0
    kld: float = 0.0
    agree: int = 0
    n: int = 0
    window_kld: list[float] = field(default_factory=list)

    def close_window(self, kld0: float, n0: int) -> None:
        """Record the window scored since the sums were (kld0, n0)."""
        if self.n > n0:
            self.window_kld.append((self.kld - kld0) / (self.n - n0))


def log_softmax(logits: F32) -> F32:
    """A new float32 array (never a view of `logits`, which may be a reused buffer)."""
    out: F32 = np.subtract(logits, logits.max(axis=-1, keepdims=True), dtype=np.float32)
    out -= np.log(np.exp(out).sum(axis=-1, keepdims=True))
    return out


@dataclass
class RefBlock:
    """What every candidate is compared with, computed once per block of positions."""

    probs: F32
    neg_entropy: npt.NDArray[np.float64]  # sum p log p per position
    argmax: npt.NDArray[np.int64]
    targets: npt.NDArray[np.int64]

    @classmethod
    def of(cls, ref_logprobs: F32, targets: npt.NDArray[np.int64]) -> RefBlock:
        probs = np.exp(ref_logprobs)
        neg_entropy = np.einsum("ij,ij->i", probs, ref_logprobs, dtype=np.float64)
        return cls(probs, neg_entropy, ref_logprobs.argmax(-1), targets)


def compare(ref: RefBlock, cand: F32, acc: RunningSums) -> None:
    """Fold one block of positions (rows of candidate log-probs) into the running sums."""
    rows = np.arange(len(ref.targets))
    acc.nll -= float(cand[rows, ref.targets].sum())
    cross = np.einsum("ij,ij->i", ref.probs, cand, dtype=np.float64)
    acc.kld += float((ref.neg_entropy - cross).sum())
    acc.agree += int((ref.argmax == cand.argmax(-1)).sum())
    acc.n += len(ref.targets)


def score_windows(
    n_models: int,
    wins: list[list[int]],
    run_window: Callable[[list[int], list[RunningSums]], None],
    progress: Callable[[int, int], None] | None = None,
) -> list[RunningSums]:
    """Run every window through `run_window`, one accumulator per model; shared by the GGUF
    and ONNX evaluations, which differ only in how a window's logits are produced."""
    if not wins:
        raise EvalError("the evaluation text is too short", hint="Use a longer --eval-file.")
    accs = [RunningSums() for _ in range(n_models)]
    for i, win in enumerate(wins):
        before = [(a.kld, a.n) for a in accs]
        run_window(win, accs)
        for acc, (kld0, n0) in zip(accs, before, strict=True):
            acc.close_window(kld0, n0)
        if progress:
            progress(i + 1, len(wins))
    return accs


def windows(
    tokens: Sequence[int], n_ctx: int, bos: int | None, max_windows: int
) -> list[list[int]]:
    body = n_ctx - 1 if bos is not None else n_ctx
    out = [
        ([bos] if bos is not None else []) + list(tokens[i : i + body])
        for i in range(0, len(tokens) - 1, body)
    ]
    return [w for w in out if len(w) > 2][:max_windows]


def standard_error(values: Sequence[float]) -> float:
    """Standard error of the mean of per-window values (0 with fewer than two windows)."""
    v = np.asarray(values, dtype=np.float64)
    return float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else 0.0


def result_row(info: ModelInfo, acc: RunningSums, model: Path | None = None) -> EvalResult:
    """One model's row, named `model` (default: `info.path`)."""
    n = max(acc.n, 1)
    return EvalResult(
        model=str(model if model is not None else info.path),
        file_size=info.file_size,
        bits_per_weight=round(info.bits_per_weight, 4),
        n_tokens=acc.n,
        ppl=float(np.exp(acc.nll / n)),
        kld=acc.kld / n,
        top1=acc.agree / n,
        kld_windows=acc.window_kld,
    )
