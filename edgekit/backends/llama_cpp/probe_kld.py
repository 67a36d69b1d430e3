"""KL divergence of probe models from one reference, on a short calibration window.

The reference's log-probabilities are computed once and kept; only positions from `first` on
are scored (the ones before are context), and only their logits are computed: with a large
vocabulary the output matrix is most of a small model's work.

Two ways to score a probe:
  - `kld(path)`: another model file, loaded and run on the same tokens;
  - `kld_patched(patches)`: the reference with some tensors' bytes overwritten (same type,
    same size) in a scratch copy of its file, scored by the model already loaded from that copy.
    llama.cpp maps a model file and computes with the mapped pages on the CPU, so a write to the
    file is what the loaded model reads; the original's bytes are copied back afterwards. This
    saves what a probe file costs: writing the whole model again and loading it, vocabulary
    included (0.6 s for Gemma's 262k tokens). Where the weights were copied instead (a GPU, a
    build that repacks them), a patch changes nothing and scores exactly 0; the caller checks.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from edgekit.backends.llama_cpp.lib import BareModel, import_llama_cpp
from edgekit.errors import EvalError
from edgekit.evaluate import F32, RefBlock, RunningSums, compare, log_softmax, windows

U8 = npt.NDArray[np.uint8]
Patch = tuple[int, U8]  # (byte offset in the file, the bytes to put there)
_COPY_RUN = 1 << 24  # bytes copied back from the original at a time


def window_logprobs(m: BareModel, win: Sequence[int], first: int) -> F32:
    """log-softmax of the predictions at positions >= first (the last token only a target)."""
    n = len(win) - 1
    if m.decode(win[:n], outputs=range(first, n)) != 0:
        raise EvalError("llama.cpp failed to decode a probe batch")
    return log_softmax(m.logits(n - first))  # a new array: the buffer is reused by the next decode


class ProbeKld:
    """Probes scored against one reference model (module doc)."""

    def __init__(
        self, text: str, n_ctx: int = 128, windows: int = 1, first: int = 32, threads: int = 2
    ) -> None:
        self.text, self.n_ctx, self.n_windows = text, n_ctx, windows
        self.first, self.threads = first, threads
        self.lib = import_llama_cpp()
        self.refs: list[RefBlock] = []
        self.wins: list[list[int]] = []
        self._held: BareModel | None = None
        self._scratch: Path | None = None  # the loaded copy that patches are written over
        self._original: Path | None = None

    def set_reference(self, model: Path, scratch: Path | None = None) -> None:
        """Score `model` once. With `scratch`, a copy of it is made there and kept loaded for
        `kld_patched` (the model file itself is never written)."""
        self.close()
        if scratch is not None:
            shutil.copyfile(model, scratch)  # a kernel-side copy on Linux
            self._scratch, self._original = scratch, model
        m = BareModel(scratch or model, self.n_ctx, self.threads, error=EvalError)
        self._held = m
        bos = m.bos
        wins = windows(m.tokenize(self.text), self.n_ctx, bos if bos >= 0 else None, self.n_windows)
        self.wins = [w for w in wins if len(w) > self.first + 1]
        if not self.wins:
            raise EvalError(
                "the calibration text is too short to measure sensitivities",
                hint=f"Give at least {self.n_ctx} tokens of text.",
            )
        self.refs = [
            RefBlock.of(
                window_logprobs(m, w, self.first), np.asarray(w[self.first + 1 :], np.int64)
            )
            for w in self.wins
        ]

    def _score(self, m: BareModel) -> float:
        acc = RunningSums()
        for win, ref in zip(self.wins, self.refs, strict=True):
            compare(ref, window_logprobs(m, win, self.first), acc)
        return acc.kld / max(acc.n, 1)

    def kld(self, model: Path) -> float:
        """KL divergence of another model file from the reference."""
        m = BareModel(model, self.n_ctx, self.threads, error=EvalError)
        try:
            return self._score(m)
        finally:
            m.close()

    def kld_patched(self, patches: Iterable[Patch]) -> float:
        """KL divergence of the reference with `patches` written over its scratch copy (module
        doc); the original's bytes are copied back afterwards. Each patch is written as it
        comes, so only one is held at a time, and by pwrite, not through a mapping of our own:
        the page cache is what the model reads either way, and a mapping would add every
        patched page to this process's resident memory twice (scratch and original: +1.5 GiB
        for a 1.5B model's ffn kind)."""
        if self._held is None or self._scratch is None or self._original is None:
            raise EvalError("no reference is loaded from a scratch copy")
        moved: list[tuple[int, int]] = []
        with self._scratch.open("r+b") as scratch, self._original.open("rb") as original:
            try:
                for at, data in patches:
                    moved.append((at, len(data)))
                    os.pwrite(scratch.fileno(), data.tobytes(), at)
                return self._score(self._held)
            finally:
                # No flush: the loaded model reads the page cache, and the copy is scratch.
                for at, n in moved:
                    for start in range(at, at + n, _COPY_RUN):
                        run = min(_COPY_RUN, at + n - start)
                        os.pwrite(scratch.fileno(), os.pread(original.fileno(), run, start), start)

    def close(self) -> None:
        if self._held is not None:
            self._held.close()
        if self._scratch is not None:
            self._scratch.unlink(missing_ok=True)
        self._held = self._scratch = self._original = None
