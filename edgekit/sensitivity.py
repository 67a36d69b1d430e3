"""Measured sensitivity: how much KL divergence each tensor adds at each type it could take.

    base --llama-quantize --pure --imatrix (one run per type)--> a pool of (tensor, type) bytes
    probes: a near-lossless background (Q8_0 everywhere) with one group of tensors at one type,
            composed by byte copy (edgekit/gguf_compose.py), scored against the background

Each probe's KL divergence from the background on the calibration text is the damage of the
moved tensors alone. A group is one kind of tensor across all blocks (all ffn_down, all attn_v,
the token embedding...): moving a whole kind at once gives a signal well above the noise of a
short text, and it needs (kinds x types) probes instead of (tensors x types). Within a kind, the
spike score is the prior: the `individual` tensors with the highest scores are probed alone at
the kind's lowest type, and their measured share of the kind's damage replaces the
size-proportional share the others get.
"""

from __future__ import annotations

import re
import statistics
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

from edgekit.gguf_compose import TensorPool

Q = GGMLQuantizationType
# Pure runs whose types (with llama.cpp's own fallbacks for rows 256 does not divide) make the
# ladder each tensor can climb: Q2_K..Q8_0 and IQ4_XS, and Q4_0/IQ4_NL/Q5_0/Q5_1 as fallbacks.
LADDER_FTYPES = ("Q2_K", "Q3_K_S", "IQ4_XS", "Q4_K_S", "Q5_K_S", "Q6_K", "Q8_0")
QUICK_FTYPES = ("Q2_K", "IQ4_XS", "Q5_K_S", "Q8_0")
BACKGROUND = Q.Q8_0
_BLOCK = re.compile(r"^blk\.\d+\.")

# (reference, candidates, text, windows) -> KLD of each candidate against the reference
Scorer = Callable[[Path, Sequence[Path], str, int], list[float]]


def bits(q: GGMLQuantizationType) -> float:
    block, size = GGML_QUANT_SIZES[q]
    return 8 * size / block


def kind_of(tensor: str) -> str:
    return _BLOCK.sub("", tensor)


@dataclass
class Probe:
    label: str
    types: dict[str, GGMLQuantizationType]
    kld: float = 0.0


@dataclass
class Measured:
    costs: dict[str, dict[GGMLQuantizationType, float]]
    probes: list[Probe]
    background_kld: float
    seconds: float
    record: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "background_kld": self.background_kld,
            "seconds": round(self.seconds, 1),
            "probes": [{"probe": p.label, "kld": p.kld} for p in self.probes],
            **self.record,
        }


def quantizable(pool: TensorPool) -> list[str]:
    """Tensors that took more than one type across the pure runs (llama.cpp quantizes them)."""
    return [t.name for t in pool.template.tensors if len(pool.types_of(t.name)) > 1]


def _groups(names: Sequence[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for n in names:
        out.setdefault(kind_of(n), []).append(n)
    return out


def _background(pool: TensorPool, names: Sequence[str]) -> dict[str, GGMLQuantizationType]:
    return {
        n: BACKGROUND if BACKGROUND in pool.types_of(n) else pool.types_of(n)[-1] for n in names
    }


def _chunks(items: Sequence[Probe], n: int) -> Iterator[Sequence[Probe]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


def _score(
    pool: TensorPool,
    probes: list[Probe],
    reference: Path,
    work: Path,
    text: str,
    windows: int,
    scorer: Scorer,
    batch: int,
) -> None:
    for group in _chunks(probes, batch):
        paths = [pool.compose(work / f"probe-{i}.gguf", p.types) for i, p in enumerate(group)]
        try:
            for p, kld in zip(group, scorer(reference, paths, text, windows), strict=True):
                p.kld = kld
        finally:
            for path in paths:
                path.unlink(missing_ok=True)


def measure(
    pool: TensorPool,
    reference: Path,
    text: str,
    work: Path,
    scorer: Scorer,
    scores: Mapping[str, float] | None = None,
    windows: int = 4,
    individual: int = 4,
    batch: int = 8,
) -> Measured:
    """Costs for every quantizable tensor at every type the pool holds for it."""
    start = time.perf_counter()
    scores = scores or {}
    names = quantizable(pool)
    bg = _background(pool, names)
    groups = _groups(names)
    probes = [Probe("background", dict(bg))]  # scores ~0 against itself: a noise check
    for kind, members in groups.items():
        for q in sorted({q for n in members for q in pool.types_of(n)} - {BACKGROUND}):
            moved = {n: q for n in members if q in pool.types_of(n)}
            probes.append(Probe(f"{kind}@{q.name}", bg | moved))
    lowest = {
        kind: min((q for n in m for q in pool.types_of(n)), key=bits) for kind, m in groups.items()
    }
    ranked = sorted((n for n in names if n in scores), key=lambda n: (-scores[n], n))
    alone = [n for n in ranked if len(groups[kind_of(n)]) > 1][:individual]
    for n in alone:
        low = _lowest_type(pool, n, lowest[kind_of(n)])
        probes.append(Probe(f"{n}@{low.name}", bg | {n: low}))
    # Probes are scored against the background itself: it differs from a probe only in the
    # moved tensors, and it runs 2-4x faster than a float reference. The background's own
    # distance from the reference is measured once, for the record.
    background = pool.compose(work / "background.gguf", bg)
    try:
        _score(pool, probes, background, work, text, windows, scorer, batch)
        (base_kld,) = scorer(reference, [background], text, windows)
    finally:
        background.unlink(missing_ok=True)
    effect = {p.label: max(p.kld, 0.0) for p in probes[1:]}
    costs = _distribute(pool, groups, effect, alone, lowest, scores)
    record = {
        "groups": {k: len(v) for k, v in groups.items()},
        "individual": alone,
        "effects": effect,
    }
    return Measured(costs, probes, base_kld, time.perf_counter() - start, record)


def _lowest_type(pool: TensorPool, name: str, want: GGMLQuantizationType) -> GGMLQuantizationType:
    types = pool.types_of(name)
    return want if want in types else types[0]


def _shares(
    pool: TensorPool,
    members: Sequence[str],
    measured: Mapping[str, float],
    scores: Mapping[str, float],
) -> dict[str, float]:
    """Each member's share of its kind's damage: measured where probed alone, the rest of the
    kind's damage split by size x spike score (relative to the kind's median) elsewhere."""
    known = {n: min(s, 1.0) for n, s in measured.items() if n in members}
    rest = [n for n in members if n not in known]
    left = max(1.0 - sum(known.values()), 0.0)
    med = statistics.median([scores[n] for n in rest if n in scores] or [1.0]) or 1.0
    weight = {n: pool.n_bytes(n, pool.types_of(n)[-1]) * (scores.get(n, med) / med) for n in rest}
    total = sum(weight.values()) or 1.0
    return known | {n: left * w / total for n, w in weight.items()}


def _distribute(
    pool: TensorPool,
    groups: Mapping[str, Sequence[str]],
    effect: Mapping[str, float],
    alone: Sequence[str],
    lowest: Mapping[str, GGMLQuantizationType],
    scores: Mapping[str, float],
) -> dict[str, dict[GGMLQuantizationType, float]]:
    costs: dict[str, dict[GGMLQuantizationType, float]] = {}
    for kind, members in groups.items():
        group_low = effect.get(f"{kind}@{lowest[kind].name}", 0.0)
        measured = {
            n: effect.get(f"{n}@{_lowest_type(pool, n, lowest[kind]).name}", 0.0) / group_low
            for n in alone
            if group_low > 0 and n in members
        }
        shares = _shares(pool, members, measured, scores)
        for n in members:
            # The background and anything above it (F16/F32 copies) count as lossless.
            costs[n] = {
                q: 0.0
                if bits(q) >= bits(BACKGROUND)
                else shares[n] * effect.get(f"{kind}@{q.name}", 0.0)
                for q in pool.types_of(n)
            }
    return costs
