"""The x86 side of scripts/check_rpi4.sh: llama-simple's greedy loop, through llama-cpp-python.

Prints exactly what llama.cpp's examples/simple prints on stdout (every prompt token's piece, then
each generated token's piece, special tokens rendered), so the two outputs compare byte for byte.
Usage: python -m edgekit.backends.llama_cpp.greedy MODEL PROMPT N_PREDICT
"""

from __future__ import annotations

import ctypes
import sys
from typing import Any

from edgekit.backends.llama_cpp.runtime import import_llama_cpp


def _piece(lib: Any, vocab: Any, token: int) -> bytes:
    buf = ctypes.create_string_buffer(128)
    n = lib.llama_token_to_piece(vocab, token, buf, len(buf), 0, True)
    return bytes(buf.raw[: max(n, 0)])


def greedy_text(model: str, prompt: str, n_predict: int) -> bytes:
    lib = import_llama_cpp()
    tokens_probe = lib.Llama(model_path=model, vocab_only=True, verbose=False)
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
    generated = 0
    for token in llm.generate(prompt_tokens, top_k=1, temp=0.0, repeat_penalty=1.0):
        if lib.llama_vocab_is_eog(vocab, token) or generated >= n_predict:
            break
        out += _piece(lib, vocab, token)
        generated += 1
    llm.close()
    return out


if __name__ == "__main__":
    model, prompt, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    sys.stdout.buffer.write(greedy_text(model, prompt, n))
