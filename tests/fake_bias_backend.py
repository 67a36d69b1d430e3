"""A small fake back end for the bias domain code: a test double of the SCORE and ADAPTERS
capability protocols (edgekit.backends.base), not a mock of llama.cpp.

The "model" is a bag of words: the state at position t is the mean of the embeddings of tokens
0..t (the same in every block, times the block's number + 1), and the next-token logits are
E @ state. A bias is planted along one unit direction u: the word that tells each association's
group A and attribute X from their counterparts gets +c*u, B's and Y's -c*u, so
lp(X | A) - lp(Y | A) grows with c^2. The fake's adapter is the erasure of u at a scale
(state - s (state.u) u), which is what a perfect erasure adapter would do; scale 1 removes the
planted association exactly.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edgekit.backends.base import FloatArray
from edgekit.bias.data import ASSOCIATIONS

N_EMBD = 24
N_LAYER = 3
_WORD = re.compile(r"[A-Za-z']+|[^\sA-Za-z']")


def _marker(phrase: str, other: str) -> list[str]:
    """The word that tells `phrase` from `other`: its last one that `other` lacks ("old" in
    "old man" against "young man", not the "man" both share)."""
    theirs = set(other.lower().split())
    return [w for w in phrase.lower().split() if w not in theirs][-1:]


class FakeModel:
    def __init__(self, planted: float = 2.0, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        u = rng.standard_normal(N_EMBD)
        self.u = (u / np.linalg.norm(u)).astype(np.float32)
        self.planted = planted
        self.ids: dict[str, int] = {"<bos>": 0}
        self.rows: list[FloatArray] = [np.zeros(N_EMBD, dtype=np.float32)]
        self.sign: dict[str, float] = {}
        for items in ASSOCIATIONS.values():
            for a in items:
                for phrase, other, s in (
                    (a.group_a, a.group_b, 1.0),
                    (a.attribute_x, a.attribute_y, 1.0),
                    (a.group_b, a.group_a, -1.0),
                    (a.attribute_y, a.attribute_x, -1.0),
                ):
                    for w in _marker(phrase, other):
                        self.sign.setdefault(w, s)
        self.scale = 0.0  # the erasure adapter's scale
        self.lora: Path | None = None
        self.control: FloatArray | None = None
        for w in sorted(self.sign):
            self.token(w)

    def token(self, word: str) -> int:
        w = word.lower()
        if w not in self.ids:
            seed = int.from_bytes(hashlib.sha256(w.encode()).digest()[:4], "little")
            v = np.random.default_rng(seed).standard_normal(N_EMBD).astype(np.float32) * 0.5
            v += self.planted * self.sign.get(w, 0.0) * self.u
            self.ids[w] = len(self.rows)
            self.rows.append(v.astype(np.float32))
        return self.ids[w]

    def tokenize(self, text: str, add_bos: bool = True) -> list[int]:
        return ([0] if add_bos else []) + [self.token(w) for w in _WORD.findall(text)]

    def states(self, tokens: Sequence[int]) -> FloatArray:
        e = np.stack([self.rows[t] for t in tokens])
        h = np.cumsum(e, axis=0) / np.arange(1, len(tokens) + 1)[:, None]
        proj = h @ self.u
        return (h - self.scale * proj[:, None] * self.u[None, :]).astype(np.float32)

    def logits(self, tokens: Sequence[int]) -> FloatArray:
        table = np.stack(self.rows)
        return (self.states(tokens) @ table.T * 4.0).astype(np.float32)


class FakeLogits:
    def __init__(self, model: FakeModel) -> None:
        self.model = model
        self.released = 0

    @property
    def n_vocab(self) -> int:
        return len(self.model.rows)

    def tokenize(self, text: str, add_bos: bool = True) -> list[int]:
        return self.model.tokenize(text, add_bos)

    def logits_from(self, tokens: Sequence[int], first: int) -> FloatArray:
        rows = self.model.logits(tokens)[first : len(tokens) - 1]
        # Words first seen in this call grew the vocabulary: pad every row to the current size.
        out = np.full((len(rows), self.n_vocab), -30.0, dtype=np.float32)
        out[:, : rows.shape[1]] = rows
        return out

    def release(self) -> None:
        self.released += 1

    def close(self) -> None:
        pass


class FakeStates:
    n_layer = N_LAYER
    n_embd = N_EMBD

    def __init__(self, model: FakeModel, points: Sequence[str] = ("l_out",)) -> None:
        self.model = model
        self.points = tuple(points)

    def read(self, tokens: Sequence[int]) -> dict[str, dict[int, FloatArray]]:
        """Every point sees the same state: the fake has no norms."""
        h = self.model.states(tokens)
        blocks = {layer: h * (layer + 1) for layer in range(N_LAYER)}
        return dict.fromkeys(self.points, blocks)

    def close(self) -> None:
        pass


class FakeRuntime:
    """Implements ScoringRuntime and AdapterRuntime (and enough of Runtime for the guard)."""

    def __init__(self, model: FakeModel | None = None) -> None:
        self.model = model or FakeModel()
        self.notes: list[str] = []
        self.lora_calls: list[tuple[Path | None, float]] = []

    info = None  # no model file: calibrate_erasure (which dequantizes one) is not for the fake

    def tokenize(self, text: str) -> list[int]:
        return self.model.tokenize(text)

    def logits(self) -> FakeLogits:
        return FakeLogits(self.model)

    def hidden_states(self, n_ctx: int = 256, points: Sequence[str] = ("l_out",)) -> FakeStates:
        return FakeStates(self.model, points)

    def set_lora(self, path: Path | None, scale: float = 1.0) -> None:
        self.lora_calls.append((path, scale))
        self.model.lora, self.model.scale = path, (scale if path is not None else 0.0)

    def set_control_vector(self, matrix: FloatArray | None) -> None:
        self.model.control = matrix
