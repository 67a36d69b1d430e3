"""`edgekit eval`: a GGUF's quality against a reference GGUF, through llama.cpp's own logits.

Perplexity on the evaluation text, mean KL divergence KL(reference || model) of the next-token
distributions, top-1 agreement, plus size and bits per weight. All models are loaded together and
fed the same windows in lockstep, so the reference's full-vocabulary distribution never needs to
be stored: with a 262k vocabulary that would be 1 MiB per token. Logits are read straight from
llama.cpp's output buffer in micro-batches, so each model costs ~n_batch x vocab floats.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from edgekit.errors import EvalError
from edgekit.gguf_file import load_model_info

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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Acc:
    nll: float = 0.0
    kld: float = 0.0
    agree: int = 0
    n: int = 0


def log_softmax(logits: F32) -> F32:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    out: F32 = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
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


def compare(ref: RefBlock, cand: F32, acc: _Acc) -> None:
    """Fold one block of positions (rows of candidate log-probs) into the running sums."""
    rows = np.arange(len(ref.targets))
    acc.nll -= float(cand[rows, ref.targets].sum())
    cross = np.einsum("ij,ij->i", ref.probs, cand, dtype=np.float64)
    acc.kld += float((ref.neg_entropy - cross).sum())
    acc.agree += int((ref.argmax == cand.argmax(-1)).sum())
    acc.n += len(ref.targets)


class _Model:
    def __init__(self, lib: Any, path: Path, n_ctx: int, n_batch: int, threads: int) -> None:
        self.lib = lib
        self.llm = lib.Llama(
            model_path=str(path),
            n_ctx=n_ctx,
            n_batch=n_batch,
            n_ubatch=n_batch,
            n_threads=threads,
            n_threads_batch=threads,
            verbose=False,
        )
        self.n_vocab = int(self.llm.n_vocab())
        self.batch = lib.llama_batch_init(n_batch, 0, 1)

    def close(self) -> None:
        self.lib.llama_batch_free(self.batch)
        self.llm.close()

    def reset(self) -> None:
        self.lib.llama_memory_clear(self.lib.llama_get_memory(self.llm.ctx), True)

    def logprobs(self, tokens: Sequence[int], pos0: int) -> F32:
        """Decode `tokens` at positions pos0.. and return log-softmax of every position's logits."""
        b = self.batch
        for i, tok in enumerate(tokens):
            b.token[i], b.pos[i], b.n_seq_id[i], b.logits[i] = tok, pos0 + i, 1, True
            b.seq_id[i][0] = 0
        b.n_tokens = len(tokens)
        if self.lib.llama_decode(self.llm.ctx, b) != 0:
            raise EvalError("llama.cpp failed to decode an evaluation batch")
        ptr = self.lib.llama_get_logits(self.llm.ctx)
        raw = np.ctypeslib.as_array(
            ctypes.cast(ptr, ctypes.POINTER(ctypes.c_float)), shape=(len(tokens), self.n_vocab)
        )
        return log_softmax(raw.astype(np.float32))


def score_windows(
    n_models: int,
    wins: list[list[int]],
    run_window: Callable[[list[int], list[_Acc]], None],
    progress: Callable[[int, int], None] | None = None,
) -> list[_Acc]:
    """Run every window through `run_window`, one accumulator per model; shared by the GGUF
    and ONNX evaluations, which differ only in how a window's logits are produced."""
    if not wins:
        raise EvalError("the evaluation text is too short", hint="Use a longer --eval-file.")
    accs = [_Acc() for _ in range(n_models)]
    for i, win in enumerate(wins):
        run_window(win, accs)
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


def evaluate(
    reference: Path,
    candidates: Sequence[Path],
    text: str,
    n_ctx: int = 256,
    n_batch: int = 64,
    max_windows: int = 8,
    threads: int = 2,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[EvalResult, list[EvalResult]]:
    """(reference's own PPL row, one row per candidate)."""
    from edgekit.runtime.llama_cpp_runtime import import_llama_cpp

    lib = import_llama_cpp()
    paths = [reference, *candidates]
    infos = [load_model_info(p) for p in paths]
    models = [_Model(lib, p, n_ctx, n_batch, threads) for p in paths]
    try:
        if len({m.n_vocab for m in models}) != 1:
            raise EvalError(
                "the models have different vocabularies",
                hint="Compare a quantized file with the reference it was made from.",
            )
        ref_llm = models[0].llm
        bos = int(ref_llm.token_bos())
        tokens = list(ref_llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))
        wins = windows(tokens, n_ctx, bos if bos >= 0 else None, max_windows)
        accs = score_windows(
            len(models), wins, lambda win, accs: _run_window(models, win, n_batch, accs), progress
        )
    finally:
        for m in models:
            m.close()
    rows = [_result(info, acc) for info, acc in zip(infos, accs, strict=True)]
    return rows[0], rows[1:]


def _run_window(models: Sequence[_Model], win: list[int], n_batch: int, accs: list[_Acc]) -> None:
    for m in models:
        m.reset()
    for start in range(0, len(win) - 1, n_batch):
        chunk = win[start : start + n_batch]
        targets = np.asarray(win[start + 1 : start + 1 + len(chunk)], dtype=np.int64)
        ref_logprobs = models[0].logprobs(chunk, start)[: len(targets)]
        ref = RefBlock.of(ref_logprobs, targets)
        compare(ref, ref_logprobs, accs[0])
        for m, acc in zip(models[1:], accs[1:], strict=True):
            compare(ref, m.logprobs(chunk, start)[: len(targets)], acc)


def _result(info: Any, acc: _Acc) -> EvalResult:
    n = max(acc.n, 1)
    return EvalResult(
        model=str(info.path),
        file_size=info.file_size,
        bits_per_weight=round(info.bits_per_weight, 4),
        n_tokens=acc.n,
        ppl=float(np.exp(acc.nll / n)),
        kld=acc.kld / n,
        top1=acc.agree / n,
    )


def decode_speed(path: Path, threads: int = 2, n_tokens: int = 64, prompt: str = "The") -> float:
    """Greedy decode tokens/s through llama.cpp's own performance counters."""
    from edgekit.runtime.llama_cpp_runtime import import_llama_cpp

    lib = import_llama_cpp()
    llm = lib.Llama(model_path=str(path), n_ctx=256, n_threads=threads, verbose=False)
    try:
        llm.create_completion(prompt, max_tokens=n_tokens, temperature=0.0)
        perf = lib.llama_perf_context(llm.ctx)
        return float(perf.n_eval / (perf.t_eval_ms / 1000)) if perf.t_eval_ms > 0 else 0.0
    finally:
        llm.close()
