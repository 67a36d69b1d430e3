"""The x86 side of scripts/check_rpi4.sh: llama-simple's greedy loop, through llama-cpp-python.

Prints exactly what llama.cpp's examples/simple prints on stdout (every prompt token's piece, then
each generated token's piece, special tokens rendered), so the two outputs compare byte for byte.
Usage: python -m edgekit.backends.llama_cpp.greedy MODEL PROMPT N_PREDICT
"""

from __future__ import annotations

import ctypes
import sys
from pathlib import Path
from typing import Any

from edgekit.backends.llama_cpp.lib import import_llama_cpp, vocab_only


def _piece(lib: Any, vocab: Any, token: int) -> bytes:
    buf = ctypes.create_string_buffer(128)
    n = lib.llama_token_to_piece(vocab, token, buf, len(buf), 0, True)
    return bytes(buf.raw[: max(n, 0)])


def greedy_text(model: str, prompt: str, n_predict: int) -> bytes:
    lib = import_llama_cpp()
    tokens_probe = vocab_only(Path(model))
    prompt_tokens = list(tokens_probe.tokenize(prompt.encode(), add_bos=True, special=True))
    tokens_probe.close()
    llm = lib.Llama(
        model_path=model,
        n_ctx=len(prompt_tokens) + n_predict,
        n_batch=len(prompt_tokens),
        verbose=False,
    )
    vocab = llm._model.vocab
    out = b"".join(_piece(lib, vocab, t) for t in prompt_tokens)
    stream = llm.generate(prompt_tokens, top_k=1, temp=0.0, repeat_penalty=1.0)
    for generated, token in enumerate(stream):
        if lib.llama_vocab_is_eog(vocab, token) or generated >= n_predict:
            break
        out += _piece(lib, vocab, token)
    llm.close()
    return out


def explain(model: str, prompt: str, n_predict: int, other: bytes) -> dict[str, object]:
    """Where another build's greedy text leaves ours, and how close our logits were there.

    Replays our greedy loop one token at a time with its logits; at the first token whose piece
    the other text does not continue, finds the other build's token among our top candidates
    and reports the logit gap between the two (a near-tie is what float rounding flips).
    """
    import numpy as np

    lib = import_llama_cpp()
    llm = lib.Llama(model_path=model, n_ctx=512, verbose=False)
    vocab = llm._model.vocab
    tokens = list(llm.tokenize(prompt.encode(), add_bos=True, special=True))
    text = b"".join(_piece(lib, vocab, t) for t in tokens)
    llm.eval(tokens)
    margins: list[float] = []
    found: dict[str, object] = {"diverged": False}
    for step in range(n_predict):
        row = lib.llama_get_logits_ith(llm.ctx, -1)
        logits = np.ctypeslib.as_array(row, shape=(llm.n_vocab(),)).astype(np.float64)
        order = np.argsort(-logits)
        ours = int(order[0])
        margins.append(float(logits[order[0]] - logits[order[1]]))
        piece = _piece(lib, vocab, ours)
        rest = other[len(text) :]
        if not rest.startswith(piece) and not found["diverged"]:
            theirs = next(
                (int(t) for t in order[:50] if rest.startswith(_piece(lib, vocab, int(t)))), None
            )
            found = {
                "diverged": True,
                "step": step,
                "ours": piece.decode(errors="replace"),
                "theirs": None
                if theirs is None
                else _piece(lib, vocab, theirs).decode(errors="replace"),
                "their_rank": None if theirs is None else int(np.where(order == theirs)[0][0]) + 1,
                "gap": None if theirs is None else float(logits[ours] - logits[theirs]),
            }
            break
        text += piece
        llm.eval([ours])
    llm.close()
    found["margins_before"] = sorted(margins[:-1])[:3] if len(margins) > 1 else []
    found["median_margin_before"] = float(np.median(margins[:-1])) if len(margins) > 1 else None
    return found


if __name__ == "__main__":
    if sys.argv[1] == "--explain":
        import json

        model, prompt, n, other = sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
        print(json.dumps(explain(model, prompt, n, other.encode())))
    else:
        model, prompt, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
        sys.stdout.buffer.write(greedy_text(model, prompt, n))
