"""Many token sequences in one llama_decode: shared prefixes decoded once, as a prefix tree.

The bias suites score thousands of short sequences (a question and each of its answers, a
sentence and its counterpart with another group); one decode per sequence pays llama.cpp's
per-call cost (graph build, thread wake-up) thousands of times and multiplies matrices a few
rows at a time. Packed, each decode carries up to a few hundred tokens of many sequences: a token
that several sequences share (the BOS, a question's prompt, the words before a pair differs)
sits in the batch once, tagged with every sequence id that shares it, and each sequence attends
only to its own (llama.cpp's unified KV cache masks by sequence). A logits row is computed once
per tree node that any sequence reads, so a prompt's last row serves all of its answers.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class PackLimits:
    tokens: int  # tree nodes per decode (the context's n_batch, and its cells)
    rows: int  # logits rows per decode (the context's n_outputs_max)
    seqs: int  # sequences per decode (the context's n_seq_max)


@dataclass
class Pack:
    """A prefix tree of sequences, in the order llama_batch takes it: a node after its parent."""

    limits: PackLimits
    token: list[int] = field(default_factory=list)
    pos: list[int] = field(default_factory=list)
    seqs: list[list[int]] = field(default_factory=list)  # sequence ids sharing each node
    output: list[bool] = field(default_factory=list)
    members: list[int] = field(default_factory=list)  # caller's index of each sequence id
    paths: list[list[int]] = field(default_factory=list)  # per sequence id, node per position
    firsts: list[int] = field(default_factory=list)
    _child: dict[tuple[int, int], int] = field(default_factory=dict)
    _rows: int = 0

    @property
    def n_rows(self) -> int:
        return self._rows

    def _shared(self, tokens: Sequence[int]) -> list[int]:
        """The nodes of the longest prefix of `tokens` already in the tree."""
        parent, nodes = -1, []
        for t in tokens:
            node = self._child.get((parent, t))
            if node is None:
                break
            nodes.append(node)
            parent = node
        return nodes

    def _cost(self, tokens: Sequence[int], first: int, shared: list[int]) -> tuple[int, int]:
        k, last = len(shared), len(tokens) - 1
        old_rows = sum(1 for i in range(first, min(k, last)) if not self.output[shared[i]])
        return len(tokens) - k, old_rows + max(0, last - max(first, k))

    def cost(self, tokens: Sequence[int], first: int) -> tuple[int, int]:
        """(new nodes, new rows) that adding the sequence would take."""
        return self._cost(tokens, first, self._shared(tokens))

    def fits(self, tokens: Sequence[int], first: int) -> bool:
        return self._fits(*self.cost(tokens, first))

    def _fits(self, nodes: int, rows: int) -> bool:
        lim = self.limits
        return (
            len(self.members) < lim.seqs
            and len(self.token) + nodes <= lim.tokens
            and self._rows + rows <= lim.rows
        )

    def try_add(self, index: int, tokens: Sequence[int], first: int) -> bool:
        """Add the sequence (the caller's `index`) if it fits; False leaves the pack as it was."""
        shared = self._shared(tokens)
        nodes, rows = self._cost(tokens, first, shared)
        if not self._fits(nodes, rows):
            return False
        seq, path = len(self.members), shared
        for node in shared:
            self.seqs[node].append(seq)
        for i in range(len(shared), len(tokens)):
            node = len(self.token)
            self._child[(path[-1] if path else -1, int(tokens[i]))] = node
            self.token.append(int(tokens[i]))
            self.pos.append(i)
            self.seqs.append([seq])
            self.output.append(False)
            path.append(node)
        for i in range(first, len(tokens) - 1):
            self.output[path[i]] = True
        self._rows += rows
        self.members.append(index)
        self.paths.append(path)
        self.firsts.append(first)
        return True

    def targets(self, seq: int) -> tuple[list[int], list[int]]:
        """The nodes whose rows sequence `seq` reads, and the token each row must predict."""
        path, first = self.paths[seq], self.firsts[seq]
        return path[first:-1], [self.token[n] for n in path[first + 1 :]]

    def row_of(self) -> dict[int, int]:
        """Node -> its row among the decode's outputs (llama.cpp returns them in batch order)."""
        rows: dict[int, int] = {}
        for node, out in enumerate(self.output):
            if out:
                rows[node] = len(rows)
        return rows


def fits_alone(tokens: Sequence[int], first: int, limits: PackLimits) -> bool:
    """Whether the sequence fits an empty pack (one that does not is decoded in chunks)."""
    return len(tokens) <= limits.tokens and len(tokens) - 1 - first <= limits.rows


def packs(limits: PackLimits, spans: Iterable[tuple[int, Sequence[int], int]]) -> Iterator[Pack]:
    """(caller's index, tokens, first) in order, as full packs; each span must fit alone."""
    pack = Pack(limits)
    for index, tokens, first in spans:
        if pack.try_add(index, tokens, first):
            continue
        if pack.members:
            yield pack
        pack = Pack(limits)
        if not pack.try_add(index, tokens, first):
            raise ValueError(f"a sequence of {len(tokens)} tokens does not fit {limits}")
    if pack.members:
        yield pack
