"""`edgekit eval` for ONNX folders: PPL, KL divergence and top-1 agreement against a reference.

The same metrics and accumulators as the GGUF evaluator (edgekit.evaluate), fed from
`OnnxRuntime.iter_logits`: every model reads the same windows in lockstep, a block of positions at
a time, so the reference's full distributions are never stored. The reference is normally the
fp32 export of the same model; all models must share its tokenizer (checked by vocabulary size).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from edgekit.backends.base import SamplingParams
from edgekit.backends.onnx.model import load_onnx_dir, onnx_model_info
from edgekit.backends.onnx.runtime import OnnxRuntime
from edgekit.devices.profiles import DeviceProfile, load_profile
from edgekit.errors import EvalError
from edgekit.evaluate import (
    EvalResult,
    RefBlock,
    RunningSums,
    compare,
    log_softmax,
    result_row,
    score_windows,
    windows,
)

PREFILL_CHUNK = 64  # positions per graph call in prompt-processing mode; see evaluate_onnx


def _row(path: Path, acc: RunningSums) -> EvalResult:
    return result_row(onnx_model_info(load_onnx_dir(path)), acc, model=path)


def _window(
    models: Sequence[OnnxRuntime], win: list[int], accs: Sequence[RunningSums], chunk: int
) -> None:
    targets_all = np.asarray(win[1:], dtype=np.int64)
    streams = [m.iter_logits(win[:-1], chunk) for m in models]
    done = 0
    for blocks in zip(*streams, strict=True):
        targets = targets_all[done : done + len(blocks[0])]
        done += len(targets)
        ref_logprobs = log_softmax(blocks[0])
        ref = RefBlock.of(ref_logprobs, targets)
        compare(ref, ref_logprobs, accs[0])
        for block, acc in zip(blocks[1:], accs[1:], strict=True):
            compare(ref, log_softmax(block), acc)


def evaluate_onnx(
    reference: Path,
    candidates: Sequence[Path],
    text: str,
    n_ctx: int = 256,
    max_windows: int = 8,
    profile: DeviceProfile | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[EvalResult, list[EvalResult]]:
    """(reference's own PPL row, one row per candidate), as the llama.cpp back end's evaluate.

    PREFILL_CHUNK positions go through the graph per call (a prompt-processing block). It
    matters for int8: onnxruntime's dynamic quantization scales each MatMul input per tensor, so
    a block of tokens shares one scale and its largest token sets it; one position per call
    would measure what decoding one token at a time sees instead.
    """
    prof = profile or load_profile("cpu")
    paths = [reference, *candidates]
    models = [OnnxRuntime(p, prof, n_ctx) for p in paths]
    try:
        if len({m.vocab_size for m in models}) != 1:
            raise EvalError(
                "the models have different vocabularies",
                hint="Compare a quantized folder with the fp32 export it was made from.",
            )
        tok = models[0].tokenizer
        body = tok.tok.encode(text, add_special_tokens=False).ids
        wins = windows(body, n_ctx, tok.bos_id, max_windows)
        accs = score_windows(
            len(models), wins, lambda win, accs: _window(models, win, accs, PREFILL_CHUNK), progress
        )
    finally:
        for m in models:
            m.close()
    rows = [_row(p, acc) for p, acc in zip(paths, accs, strict=True)]
    return rows[0], rows[1:]


def decode_speed(
    path: Path, profile: DeviceProfile | None = None, n_tokens: int = 64, prompt: str = "The"
) -> float:
    """Greedy decode tokens/s on onnxruntime (the same measure `edgekit run` prints)."""
    rt = OnnxRuntime(path, profile or load_profile("cpu"), n_ctx=n_tokens + 64)
    try:
        result = rt.generate(rt.prompt_tokens(prompt), SamplingParams(n_tokens, temperature=0))
        return result.stats.decode_tokens_per_s
    finally:
        rt.close()
