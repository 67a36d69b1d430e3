"""The guard: a measured mix ships only if it beats the stock mix it started from.

The measured plan starts from llama.cpp's stock mix at the same size, so that mix is always a
valid answer. After the measured file is written, both files are scored against the float base
on the calibration text (never the evaluation text: what a user's convert sees) and the stock
mix, written by llama-quantize with the same imatrix, replaces the measured file where the
measured one is not better. The planner's cost model is first order (independent errors add,
one kind's rate fits all its tensors); the guard checks its answer on the whole file.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edgekit.backends.llama_cpp.eval import Windows, evaluate
from edgekit.outputs import atomic_output

# The built-in calibration text is ~1,000 tokens: every window of it is scored.
GUARD_CUT = Windows(n_ctx=256, n_batch=128, max_windows=16)


@dataclass(frozen=True)
class GuardVerdict:
    stock: str  # the stock mix compared with, e.g. "Q4_K_M"
    measured_kld: float
    stock_kld: float
    tokens: int
    seconds: float

    @property
    def shipped(self) -> str:
        return "measured" if self.measured_kld < self.stock_kld else "stock"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"shipped": self.shipped}

    def line(self) -> str:
        kept = "kept" if self.shipped == "measured" else f"replaced by llama.cpp's {self.stock}"
        return (
            f"guard: measured mix KLD {self.measured_kld:.5f} vs stock {self.stock} "
            f"{self.stock_kld:.5f} on {self.tokens} calibration tokens: {kept}"
        )


def judge(
    base: Path, written: Path, stock_file: Path, text: str, stock: str, threads: int = 2
) -> GuardVerdict:
    """Both files' KL divergence from `base` on `text`, fed the same windows."""
    start = time.perf_counter()
    _, (ours, theirs) = evaluate(base, [written, stock_file], text, GUARD_CUT, threads=threads)
    return GuardVerdict(stock, ours.kld, theirs.kld, ours.n_tokens, time.perf_counter() - start)


def ship_stock(stock_file: Path, out: Path) -> Path:
    """The stock mix's bytes, unchanged, in place of the measured file."""
    with atomic_output(out) as tmp:
        shutil.copyfile(stock_file, tmp)
    return out
