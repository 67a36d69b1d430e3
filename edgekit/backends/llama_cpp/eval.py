"""`edgekit eval` on llama.cpp: every model loaded together, fed the same windows in lockstep.

Logits are read straight from llama.cpp's output buffer in micro-batches, so each model costs
~n_batch x vocab floats.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgekit.backends.llama_cpp.lib import BareModel, import_llama_cpp
from edgekit.errors import EvalError
from edgekit.evaluate import (
    F32,
    EvalResult,
    RefBlock,
    RunningSums,
    compare,
    log_softmax,
    result_row,
    score_windows,
    windows,
)
from edgekit.gguf.reader import load_model_info


def _logprobs(m: BareModel, tokens: Sequence[int], pos0: int) -> F32:
    """Decode `tokens` at positions pos0.. (a fresh cache at 0) and return log-softmax of every
    position's logits."""
    if m.decode(tokens, pos0) != 0:
        raise EvalError("llama.cpp failed to decode an evaluation batch")
    return log_softmax(m.logits(len(tokens)).astype(np.float32))


@dataclass(frozen=True)
class Windows:
    """How the text is cut and fed: at most `max_windows` windows of `n_ctx` tokens, decoded
    `n_batch` tokens at a time.

    `second_half`: llama-perplexity's layout (chunks of n_ctx tokens of the BOS-prefixed text,
    BOS in each chunk's first position, only the second half of each chunk scored), so the KLD
    can be checked against `llama-perplexity --kl-divergence` on the same text.
    """

    n_ctx: int = 256
    n_batch: int = 64
    max_windows: int = 8
    second_half: bool = False


def evaluate(
    reference: Path,
    candidates: Sequence[Path],
    text: str,
    cut: Windows = Windows(),
    threads: int = 2,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[EvalResult, list[EvalResult]]:
    """(reference's own PPL row, one row per candidate), over the windows `cut` describes."""
    import_llama_cpp()  # a missing llama-cpp-python is named before any file is read
    n_ctx, n_batch, max_windows = cut.n_ctx, cut.n_batch, cut.max_windows
    paths = [reference, *candidates]
    infos = [load_model_info(p) for p in paths]
    models = [
        BareModel(p, n_ctx, threads, n_batch=n_batch, mapped=False, error=EvalError) for p in paths
    ]
    try:
        if len({m.n_vocab for m in models}) != 1:
            raise EvalError(
                "the models have different vocabularies",
                hint="Compare a quantized file with the reference it was made from.",
            )
        bos = models[0].bos
        tokens = models[0].tokenize(text)
        if cut.second_half:
            wins = perplexity_chunks(tokens, n_ctx, bos, max_windows)
            first = n_ctx // 2
        else:
            wins = windows(tokens, n_ctx, bos if bos >= 0 else None, max_windows)
            first = 0
        accs = score_windows(
            len(models),
            wins,
            lambda win, accs: _run_window(models, win, n_batch, accs, first),
            progress,
        )
    finally:
        for m in models:
            m.close()
    rows = [result_row(info, acc) for info, acc in zip(infos, accs, strict=True)]
    return rows[0], rows[1:]


def perplexity_chunks(
    tokens: Sequence[int], n_ctx: int, bos: int, max_windows: int
) -> list[list[int]]:
    """llama-perplexity's chunks: the text with BOS in front, cut every n_ctx tokens, each
    chunk's first token replaced by BOS (when the vocabulary has one)."""
    stream = ([bos] if bos >= 0 else []) + list(tokens)
    out = []
    for i in range(min(len(stream) // n_ctx, max_windows)):
        chunk = stream[i * n_ctx : (i + 1) * n_ctx]
        if bos >= 0:
            chunk[0] = bos
        out.append(chunk)
    return out


def _run_window(
    models: Sequence[BareModel],
    win: list[int],
    n_batch: int,
    accs: list[RunningSums],
    first: int = 0,
) -> None:
    """Feed `win` to every model; score the predictions made at positions >= `first`."""
    for start in range(0, len(win) - 1, n_batch):
        chunk = win[start : start + n_batch]
        targets = np.asarray(win[start + 1 : start + 1 + len(chunk)], dtype=np.int64)
        keep = slice(max(first - start, 0), len(targets))
        outputs = [_logprobs(m, chunk, start) for m in models]  # a fresh cache at start 0
        if keep.start >= keep.stop:
            continue
        ref_logprobs = outputs[0][keep]
        ref = RefBlock.of(ref_logprobs, targets[keep])
        compare(ref, ref_logprobs, accs[0])
        for out, acc in zip(outputs[1:], accs[1:], strict=True):
            compare(ref, out[keep], acc)


def decode_speed(path: Path, threads: int = 2, n_tokens: int = 64, prompt: str = "The") -> float:
    """Greedy decode tokens/s through llama.cpp's own performance counters."""
    lib = import_llama_cpp()
    llm = lib.Llama(model_path=str(path), n_ctx=256, n_threads=threads, verbose=False)
    try:
        llm.create_completion(prompt, max_tokens=n_tokens, temperature=0.0)
        perf = lib.llama_perf_context(llm.ctx)
        return float(perf.n_eval / (perf.t_eval_ms / 1000)) if perf.t_eval_ms > 0 else 0.0
    finally:
        llm.close()
