"""Log-probabilities of token sequences straight from llama.cpp: Capability.SCORE.

The bias probes compare a handful of fixed continuations, so scoring them is cheaper and
deterministic where free generation would be neither: one forward pass, no sampling. Many
sequences go through one decode as a prefix tree (packing.py), on a context of the scorer's own
opened on the loaded weights: llama-cpp-python's Llama keeps one sequence per context, and
scoring there would also throw away the prompt a chat has cached. The runtime's adapters reach
this context too (ContextAdapters), so a score is always of the model that generates.

Its size is bounded so that a guard scoring beside a chat on a Pi costs little: SCORE_CELLS of KV
cache, and at most SCORE_ROWS logits rows per decode (llama.cpp reserves the output projection
for that many rows: 64 MiB on Gemma 3's 262k vocabulary). Measured on Gemma 3 270M: +85 MiB of
RSS when opened, +159 MiB after a pass over the held-out split, which took 53 s where one
sequence per decode took 121 s (calibration split: 54 s against 118 s).

Packing changes the numbers a little, as any change of batch shape does on llama.cpp's CPU
kernels: on Gemma 3 270M the same sequence decoded whole or after a cached prefix differs by up
to 0.19 nats per token, and the calibration split's bias read 0.1018 (whole), 0.1017 (cached
prefixes, the old path) and 0.1053 (packed), per category within +-0.018 of each other.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from typing import Any

import numpy as np

from edgekit.backends.base import (
    FloatArray,
    LogProbs,
    common_prefix,
    log_sum_exp_rows,
    logprobs_row_by_row,
)
from edgekit.backends.llama_cpp.adapters import ContextAdapters
from edgekit.backends.llama_cpp.lib import fill_batch, fill_tree
from edgekit.backends.llama_cpp.packing import Pack, PackLimits, fits_alone, packs
from edgekit.backends.llama_cpp.quiet import quietly
from edgekit.errors import RuntimeBackendError

SCORE_CELLS = 1024  # KV cells: one pack, or the longest sequence scored alone
SCORE_UBATCH = 256
SCORE_ROWS = 64
SCORE_SEQS = 64


class LlamaLogits:
    """Logits and log-probabilities of token sequences on a Llama's weights and tokenizer."""

    def __init__(self, llm: Any, adapters: ContextAdapters) -> None:
        import llama_cpp

        self.lib = llama_cpp
        self.llm = llm
        self.adapters = adapters
        self.n_vocab = int(llm.n_vocab())
        n_ctx = min(SCORE_CELLS, max(256, int(llama_cpp.llama_model_n_ctx_train(llm.model))))
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = params.n_batch = n_ctx
        params.n_ubatch = min(SCORE_UBATCH, n_ctx)
        params.n_seq_max = SCORE_SEQS
        params.kv_unified = True  # sequences that share a prefix share its cells
        params.n_outputs_max = SCORE_ROWS
        params.n_threads = llm.context_params.n_threads
        params.n_threads_batch = llm.context_params.n_threads_batch
        params.no_perf = True
        self.ctx = quietly(lambda: llama_cpp.llama_init_from_model(llm.model, params))
        if not self.ctx:
            raise RuntimeBackendError("llama.cpp could not open a context to score text")
        self.n_ctx = n_ctx
        self.limits = PackLimits(tokens=n_ctx, rows=SCORE_ROWS, seqs=SCORE_SEQS)
        self._batch = llama_cpp.llama_batch_init(n_ctx, 0, SCORE_SEQS)
        self._cached: list[int] = []  # what sequence 0 of the cache holds (logits_from)
        adapters.attach(self.ctx)

    def close(self) -> None:
        if self.ctx:
            self.adapters.detach(self.ctx)
            self.lib.llama_batch_free(self._batch)
            self.lib.llama_free(self.ctx)
            self.ctx = None

    def tokenize(self, text: str, add_bos: bool = True) -> list[int]:
        return list(self.llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=False))

    def release(self) -> None:
        """Empty this scorer's cache (the generating context is never touched)."""
        self.lib.llama_memory_clear(self.lib.llama_get_memory(self.ctx), True)
        self._cached = []

    def token_logprobs(self, spans: Sequence[tuple[Sequence[int], int]]) -> list[LogProbs]:
        out: list[LogProbs | None] = [None] * len(spans)
        packed = []
        for i, (tokens, first) in enumerate(spans):
            self._check(tokens, first)
            if fits_alone(tokens, first, self.limits):
                packed.append((i, tokens, first))
            else:
                out[i] = logprobs_row_by_row(self, [(tokens, first)])[0]
        for pack in packs(self.limits, packed):
            self._decode_pack(pack, out)
        return [x if x is not None else np.zeros(0) for x in out]

    def logits_from(self, tokens: Sequence[int], first: int) -> FloatArray:
        """Rows for positions first..len-2 (each predicts the next token), on sequence 0.

        Decodes only what the cache does not already hold, keeping at least position `first`
        to decode so its row is fresh; at most SCORE_ROWS rows per decode.
        """
        self._check(tokens, first)
        mem = self.lib.llama_get_memory(self.ctx)
        keep = min(common_prefix(self._cached, tokens), first)
        if keep < len(self._cached):
            self.lib.llama_memory_seq_rm(mem, 0, keep, -1)
            self._cached = self._cached[:keep]
        out = np.empty((max(len(tokens) - 1 - first, 0), self.n_vocab), dtype=np.float32)
        pos = keep
        while pos < len(tokens):
            # A chunk ends where its rows would pass SCORE_ROWS.
            end = min(len(tokens), pos + self.n_ctx, max(first, pos) + SCORE_ROWS)
            want = range(max(first, pos), min(end, len(tokens) - 1))
            fill_batch(self._batch, tokens[pos:end], pos, want)
            self._decode()
            for p in want:
                ptr = self.lib.llama_get_logits_ith(self.ctx, p - pos)
                out[p - first] = np.ctypeslib.as_array(ptr, shape=(self.n_vocab,))
            pos = end
        self._cached = list(tokens)
        return out

    def _check(self, tokens: Sequence[int], first: int) -> None:
        if not 0 <= first < len(tokens):
            raise ValueError(f"first position {first} outside 0..{len(tokens) - 1}")
        if len(tokens) > self.n_ctx:
            raise RuntimeBackendError(
                f"a sequence of {len(tokens)} tokens is longer than the scorer's context "
                f"({self.n_ctx} tokens)"
            )

    def _decode_pack(self, pack: Pack, out: list[LogProbs | None]) -> None:
        self.release()
        fill_tree(self._batch, pack, pack.output)
        self._decode()
        rows = self._rows(pack.n_rows)
        lse = log_sum_exp_rows(rows)
        row_of = pack.row_of()
        for seq, index in enumerate(pack.members):
            nodes, targets = pack.targets(seq)
            r = np.array([row_of[n] for n in nodes], dtype=np.int64)
            out[index] = rows[r, np.array(targets, dtype=np.int64)].astype(np.float64) - lse[r]
        self.release()

    def _rows(self, n_rows: int) -> FloatArray:
        """The last decode's rows, a view of llama.cpp's buffer: stored contiguously, in the
        order their tokens sit in the batch."""
        if not n_rows:
            return np.zeros((0, self.n_vocab), dtype=np.float32)
        ptr = ctypes.cast(self.lib.llama_get_logits(self.ctx), ctypes.POINTER(ctypes.c_float))
        return np.ctypeslib.as_array(ptr, shape=(n_rows, self.n_vocab))

    def _decode(self) -> None:
        rc = self.lib.llama_decode(self.ctx, self._batch)
        if rc != 0:
            self._cached = []
            raise RuntimeBackendError(f"llama_decode failed while scoring (code {rc})")
