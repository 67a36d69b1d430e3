"""Next-token logits of token sequences straight from llama.cpp: Capability.SCORE.

The bias probes compare a handful of fixed continuations, so scoring them is cheaper and
deterministic where free generation would be neither: one forward pass per continuation, no
sampling. Sequences that share a prefix (a question and its answer options) reuse the prefix's
KV cache.

This talks to the llama_context that a `llama_cpp.Llama` owns, below the Llama class, because
that class only keeps logits for every position when built with `logits_all=True` (which would
cost n_ctx x 262k floats on the default model). After scoring, `release()` hands the context back
with an empty cache, so the next `Llama.generate` re-evaluates its prompt (and sees any adapter
set in between).
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from typing import Any

import numpy as np

from edgekit.backends.base import FloatArray, common_prefix
from edgekit.backends.llama_cpp.lib import fill_batch
from edgekit.errors import RuntimeBackendError

# Which source last wrote each context's KV cache (by context address). A source's record of
# the cache is only trusted while it is the last writer and the Llama object has not generated
# since (generation advances Llama.n_tokens; scoring leaves it at 0).
_KV_OWNER: dict[int, int] = {}


class LlamaLogits:
    """Logit rows for token sequences on a `llama_cpp.Llama` (its context, its tokenizer)."""

    def __init__(self, llm: Any) -> None:
        import llama_cpp

        self.lib = llama_cpp
        self.llm = llm
        self.n_vocab = int(llm.n_vocab())
        self.n_batch = int(llm.n_batch)
        self._cached: list[int] = []  # what the KV cache of sequence 0 holds now
        self._batch = llama_cpp.llama_batch_init(self.n_batch, 0, 1)

    def close(self) -> None:
        self.release()
        self.lib.llama_batch_free(self._batch)

    def tokenize(self, text: str, add_bos: bool = True) -> list[int]:
        return list(self.llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=False))

    def release(self) -> None:
        """Empty the KV cache and tell the Llama object its cached prompt is gone."""
        mem = self.lib.llama_get_memory(self.llm.ctx)
        self.lib.llama_memory_clear(mem, True)
        self._cached = []
        self.llm.reset()

    def logits_from(self, tokens: Sequence[int], first: int) -> FloatArray:
        """Logit rows for positions first..len-2 (each predicts the next token).

        Decodes only what the cache does not already hold, keeping at least position `first`
        to decode so its row is fresh.
        """
        mem = self.lib.llama_get_memory(self.llm.ctx)
        ctx_key = int(ctypes.cast(self.llm.ctx, ctypes.c_void_p).value or 0)
        stale = self.llm.n_tokens != 0 or _KV_OWNER.get(ctx_key) != id(self)
        if stale or not self._cached:
            self.lib.llama_memory_clear(mem, True)
            self.llm.reset()
            self._cached = []
        _KV_OWNER[ctx_key] = id(self)
        keep = min(common_prefix(self._cached, tokens), first)
        if keep < len(self._cached):
            self.lib.llama_memory_seq_rm(mem, 0, keep, -1)
            self._cached = self._cached[:keep]
        todo = list(tokens[keep:])
        n_rows = len(tokens) - 1 - first
        out = np.empty((max(n_rows, 0), self.n_vocab), dtype=np.float32)
        pos = keep
        for lo in range(0, len(todo), self.n_batch):
            chunk = todo[lo : lo + self.n_batch]
            self._decode(chunk, pos, want=range(first, len(tokens) - 1))
            for i in range(len(chunk)):
                p = pos + i
                if first <= p < len(tokens) - 1:
                    ptr = self.lib.llama_get_logits_ith(self.llm.ctx, i)
                    out[p - first] = np.ctypeslib.as_array(ptr, shape=(self.n_vocab,))
            pos += len(chunk)
        self._cached = list(tokens)
        return out

    def _decode(self, chunk: Sequence[int], pos0: int, want: range) -> None:
        # Logits only where a row is read: each costs a 262k-wide projection on Gemma 3.
        fill_batch(self._batch, chunk, pos0, want)
        rc = self.lib.llama_decode(self.llm.ctx, self._batch)
        if rc != 0:
            self._cached = []
            raise RuntimeBackendError(f"llama_decode failed while scoring (code {rc})")
