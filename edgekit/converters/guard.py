"""The guard: a measured mix ships only if it beats the stock mix it started from.

The measured plan starts from llama.cpp's stock mix at the same size, so that mix is always a
valid answer. After the measured file is written, both files are scored against the float base
on the calibration text (never the evaluation text: what a user's convert sees) and the stock
mix, written by llama-quantize with the same imatrix, replaces the measured file where the
measured one is worse beyond the guard's own noise: the standard error of the two files' KLD
difference over the windows scored. Within that noise the text cannot tell the two apart, and
a coin flip between them would make a larger budget ship a worse file than a smaller one. The
planner's cost model is first order (independent errors add, one kind's rate fits all its
tensors); the guard checks its answer on the whole file.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edgekit.backends.llama_cpp.eval import Windows, evaluate
from edgekit.evaluate import EvalResult, standard_error
from edgekit.outputs import atomic_output

# The built-in calibration text is ~1,000 tokens: every window of it is scored.
GUARD_CUT = Windows(n_ctx=256, n_batch=128, max_windows=16)
# The candidates are scored beside the base while together they are at most this share of its
# size, else one at a time. That bounds the files resident at once, not the peak: a 1.5B F16
# base and one Q4_K_M file still took 1.67x the base in memory (llama.cpp's repacked copies).
TOGETHER = 0.5


@dataclass(frozen=True)
class GuardVerdict:
    stock: str  # the stock mix compared with, e.g. "Q4_K_M"
    measured_kld: float
    stock_kld: float
    noise: float  # standard error of measured_kld - stock_kld over the windows
    tokens: int
    seconds: float
    plan: int = 1  # which of the measured plans tried this verdict is about (1: the best)

    @property
    def shipped(self) -> str:
        return "measured" if self.measured_kld <= self.stock_kld + self.noise else "stock"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"shipped": self.shipped}

    def line(self) -> str:
        kept = "kept" if self.shipped == "measured" else f"replaced by llama.cpp's {self.stock}"
        which = "measured mix" if self.plan == 1 else "runner-up measured mix"
        return (
            f"guard: {which} KLD {self.measured_kld:.5f} vs stock {self.stock} "
            f"{self.stock_kld:.5f} (+-{self.noise:.5f}) on {self.tokens} calibration tokens: {kept}"
        )


def judge(
    base: Path, written: Path, stock_file: Path, text: str, stock: str, threads: int = 2
) -> GuardVerdict:
    """Both files' KL divergence from `base` on `text`, fed the same windows."""
    start = time.perf_counter()
    ours, theirs = _scores(base, [written, stock_file], text, threads)
    noise = paired_se(ours.kld_windows, theirs.kld_windows)
    seconds = time.perf_counter() - start
    return GuardVerdict(stock, ours.kld, theirs.kld, noise, ours.n_tokens, seconds)


def _scores(base: Path, files: Sequence[Path], text: str, threads: int) -> list[EvalResult]:
    """The files' rows against `base`, fed the same windows: in one pass where they fit beside
    the base within TOGETHER of its size (every file is resident while scored: mapped, with
    repacked copies of some types), else one at a time, the base run again for each (a 1.5B
    model's F16 base and two Q4_K_M files together are 1.6x the base's bytes)."""
    if sum(f.stat().st_size for f in files) <= TOGETHER * base.stat().st_size:
        return evaluate(base, files, text, GUARD_CUT, threads=threads)[1]
    return [evaluate(base, [f], text, GUARD_CUT, threads=threads)[1][0] for f in files]


def paired_se(a: Sequence[float], b: Sequence[float]) -> float:
    """Standard error of the mean per-window difference a - b (the same windows)."""
    return standard_error([x - y for x, y in zip(a, b, strict=True)])


def ship_stock(stock_file: Path, out: Path) -> Path:
    """The stock mix's bytes, unchanged, in place of the measured file."""
    with atomic_output(out) as tmp:
        shutil.copyfile(stock_file, tmp)
    return out
