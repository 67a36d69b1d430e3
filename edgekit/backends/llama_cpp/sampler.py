"""llama.cpp's native sampler chain, built as llama-cli builds it.

llama-cpp-python samples in Python over a copy of the logits; with Gemma 3's 262k-token vocabulary
that copy and the Python work cost ~1 ms per token, ~10% of a 270M model's decode. The chain below
runs entirely in C++ on the context's own logits buffer.
"""

from __future__ import annotations

import ctypes
from types import ModuleType
from typing import Any

import numpy as np

from edgekit.backends.base import SamplingParams

# llama-cli's --repeat-last-n default: the penalties look at the last 64 tokens.
PENALTY_LAST_N = 64
# llama-cli's --min-keep default (0) lets a filter keep a single candidate.
MIN_KEEP = 0


def is_plain_greedy(params: SamplingParams) -> bool:
    """Greedy with nothing that reshapes the logits first: the argmax of the raw logits."""
    return params.temperature <= 0 and params.repeat_penalty == 1.0


class NativeSampler:
    """A llama_sampler chain; `sample` reads the context's logits in place (no copy)."""

    def __init__(self, lib: ModuleType, ctx: Any, vocab: Any, params: SamplingParams) -> None:
        self.lib, self.ctx = lib, ctx
        self.n_vocab = int(lib.llama_vocab_n_tokens(vocab))
        self.greedy = is_plain_greedy(params)
        self.penalized = params.repeat_penalty != 1.0
        chain_params = lib.llama_sampler_chain_default_params()
        chain_params.no_perf = True
        self.chain = lib.llama_sampler_chain_init(chain_params)
        for sampler in self._stages(lib, vocab, params):
            lib.llama_sampler_chain_add(self.chain, sampler)  # the chain owns it from here

    @staticmethod
    def _stages(lib: ModuleType, vocab: Any, p: SamplingParams) -> list[Any]:
        # llama-cli's default order: penalties, top-k, top-p, min-p, temperature, then draw.
        stages: list[Any] = []
        if p.repeat_penalty != 1.0:
            n_vocab = lib.llama_vocab_n_tokens(vocab)
            stages.append(
                lib.llama_sampler_init_penalties(
                    n_vocab, PENALTY_LAST_N, p.repeat_penalty, 0.0, 0.0
                )
            )
        if p.temperature <= 0:
            return [*stages, lib.llama_sampler_init_greedy()]
        if p.top_k > 0:
            stages.append(lib.llama_sampler_init_top_k(p.top_k))
        if p.top_p < 1.0:
            stages.append(lib.llama_sampler_init_top_p(p.top_p, MIN_KEEP))
        if p.min_p > 0.0:
            stages.append(lib.llama_sampler_init_min_p(p.min_p, MIN_KEEP))
        stages.append(lib.llama_sampler_init_temp(p.temperature))
        stages.append(lib.llama_sampler_init_dist(p.seed & 0xFFFFFFFF))
        return stages

    def accept_prompt(self, tokens: list[int]) -> None:
        """Feed the prompt's tail to the repeat penalty, as llama-cli does."""
        if self.penalized:
            for token in tokens[-PENALTY_LAST_N:]:
                self.lib.llama_sampler_accept(self.chain, token)

    def sample(self) -> int:
        if self.greedy:
            # The greedy sampler would first fill a 262k-entry candidate array; argmax over
            # a view of llama.cpp's own logits buffer gives the same token in a tenth the time.
            ptr = self.lib.llama_get_logits_ith(self.ctx, -1)
            logits = np.ctypeslib.as_array(ptr, shape=(self.n_vocab,))
            return int(np.argmax(logits))
        return int(self.lib.llama_sampler_sample(self.chain, self.ctx, -1))

    def close(self) -> None:
        if self.chain is not None:
            self.lib.llama_sampler_free(self.chain)
            self.chain = None


class PieceDecoder:
    """Token -> bytes through llama_token_to_piece into one reused buffer, cached per token."""

    def __init__(self, lib: ModuleType, vocab: Any) -> None:
        self.lib, self.vocab = lib, vocab
        self._buf = ctypes.create_string_buffer(64)
        self._cache: dict[int, bytes] = {}

    def __call__(self, token: int) -> bytes:
        piece = self._cache.get(token)
        if piece is None:
            piece = self._render(token)
            self._cache[token] = piece
        return piece

    def _render(self, token: int) -> bytes:
        n = self.lib.llama_token_to_piece(self.vocab, token, self._buf, len(self._buf), 0, False)
        if n < 0:  # the piece is longer than the buffer: -n is its length
            self._buf = ctypes.create_string_buffer(-n)
            n = self.lib.llama_token_to_piece(
                self.vocab, token, self._buf, len(self._buf), 0, False
            )
        return bytes(self._buf.raw[:n])
