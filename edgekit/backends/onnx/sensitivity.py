"""Measured sensitivity of the fused graph: the KL divergence each weight node adds at 4 bits.

The GGUF path measures it with llama.cpp (backends/llama_cpp/sensitivity.py); this is the same
method on the graph onnxruntime will run, written by the same writer as the final file (NbitsParts),
so what is measured is what ships: MatMulNBits k_quant blocks, the tied embedding read through
GatherBlockQuantized, accuracy_level 4 activations.

  background: every weight node at 8 bits, the head and the embedding included (near-lossless);
  probes, each scored by its KL divergence from the background on calibration text:
    kind   - one kind of node across all blocks (all down_proj, all qkv_proj, the head) at 4 bits;
    block  - every node of one block at 4 bits (how damage depends on depth);
    alone  - the nodes with the highest spike scores (the prior), each alone at 4 bits.

A node's cost at 4 bits is its own probe's KLD where it was probed alone; otherwise what its kind
lost beyond the nodes probed alone, shared over the kind's blocks in proportion to the block probes.
8 bits costs 0 (the background). mixplan.plan_mix then buys 8 bits where cost per byte is highest.
A whole kind or block moves the KLD well above the noise of a short text; single nodes of a
135M-parameter model often do not, which is why only the prior's top nodes are probed alone.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gguf import MODEL_TENSOR, TENSOR_NAMES

from edgekit.backends.onnx.cut import block_of, crossing, suffix, with_outputs
from edgekit.backends.onnx.nbits import LM_HEAD, FusedNode, NbitsParts
from edgekit.quant.types import NBITS_4, NBITS_8

Log = Callable[[str], None]
ProbeWriter = Callable[[str, frozenset[str], Callable[[Any], Any] | None], Path]
OUTPUT = TENSOR_NAMES[MODEL_TENSOR.OUTPUT] + ".weight"  # an untied head's planned name
HEAD = "head"
EMBEDDING = "embedding"
WINDOWS = 4  # evaluation windows per probe
ALONE = 4  # the prior's top nodes probed alone
_VERSION = "2"  # 2: 8-bit nodes (the background) by onnxruntime's C++ kernel


def kind(n: FusedNode) -> str:
    """`mlp/down_proj` for a block's node; `head` for the head (with the embedding when tied)."""
    parts = n.node.split("/")
    if n.node.startswith("/model/layers."):
        return "/".join(parts[3:-1])
    return EMBEDDING if n.op == "Gather" else HEAD


def block(n: FusedNode) -> int | None:
    return block_of(n.node)


def probe_start(p: Probe, nodes: Sequence[FusedNode]) -> int:
    """The first block the probe changes; the blocks before it compute what the background
    does. An untied head comes after the last block; the embedding, and a head it reads
    (tied), before the first."""
    n_blocks = 1 + max((b for n in nodes if (b := block(n)) is not None), default=-1)
    starts = [
        n_blocks if n.node == LM_HEAD and n.name == OUTPUT else (block(n) or 0)
        for n in nodes
        if n.name in p.members
    ]
    return min(starts, default=0)


@dataclass
class Probe:
    label: str  # kind:mlp/down_proj, block:3, alone:blk.0.ffn_down.weight
    members: frozenset[str]  # planned tensor names moved to 4 bits
    kld: float = 0.0


@dataclass
class SensitivityResult:
    costs: dict[str, float]  # planned tensor name -> KLD added at 4 bits
    probes: list[Probe]
    seconds: float
    record: dict[str, Any] = field(default_factory=dict)


def make_probes(nodes: Sequence[FusedNode], scores: Mapping[str, float], alone: int) -> list[Probe]:
    kinds: dict[str, set[str]] = {}
    blocks: dict[int, set[str]] = {}
    for n in nodes:
        kinds.setdefault(kind(n), set()).add(n.name)
        b = block(n)
        if b is not None:
            blocks.setdefault(b, set()).add(n.name)
    probes = [Probe(f"kind:{k}", frozenset(v)) for k, v in sorted(kinds.items())]
    probes += [Probe(f"block:{b}", frozenset(v)) for b, v in sorted(blocks.items())]
    # A kind with one member (the head) is already probed alone.
    single = {next(iter(v)) for v in kinds.values() if len(v) == 1}
    ranked = sorted(
        (n for n in nodes if n.name in scores and n.name not in single),
        key=lambda n: (-scores[n.name], n.name),
    )
    probes += [Probe(f"alone:{n.name}", frozenset({n.name})) for n in ranked[:alone]]
    return probes


def distribute(nodes: Sequence[FusedNode], probes: Sequence[Probe]) -> dict[str, float]:
    """Per-node 4-bit cost from the probes' KLDs (see the module docstring)."""
    effect = {p.label: max(p.kld, 0.0) for p in probes}
    costs: dict[str, float] = {}
    by_kind: dict[str, list[FusedNode]] = {}
    for n in nodes:
        by_kind.setdefault(kind(n), []).append(n)
    for k, members in by_kind.items():
        total = effect.get(f"kind:{k}", 0.0)
        known = {n.name: effect[f"alone:{n.name}"] for n in members if f"alone:{n.name}" in effect}
        left = max(total - sum(known.values()), 0.0)
        rest = [n for n in members if n.name not in known]
        # Depth weight: the block probe's damage, scaled by this node's share of the block's
        # weights (a block probe moves every kind at once).
        weight = {n.name: _depth(n, nodes, effect) for n in rest}
        norm = sum(weight.values())
        for n in rest:
            share = weight[n.name] / norm if norm > 0 else 1 / len(rest)
            costs[n.name] = left * share
        costs.update(known)
    return costs


def _depth(n: FusedNode, nodes: Sequence[FusedNode], effect: Mapping[str, float]) -> float:
    b = block(n)
    if b is None:
        return 1.0
    size = n.shape[0] * n.shape[1]
    block_size = sum(m.shape[0] * m.shape[1] for m in nodes if block(m) == b)
    return effect.get(f"block:{b}", 0.0) * size / max(block_size, 1)


def _suffix_at(start: int) -> Callable[[Any], Any] | None:
    return None if start == 0 else lambda model: suffix(model, start)


@contextlib.contextmanager
def _probe_files(parts: NbitsParts, nodes: list[FusedNode]) -> Iterator[ProbeWriter]:
    """Probe graphs beside the data they point into (a few MB each), removed at the end."""
    written: list[Path] = []

    def write(label: str, low: frozenset[str], edit: Callable[[Any], Any] | None) -> Path:
        types = {n.name: (NBITS_4 if n.name in low else NBITS_8) for n in nodes}
        name = f".probe-{os.getpid()}-{len(written)}.onnx"
        path = parts.write_probe(name, nodes, types, edit)
        written.append(path)
        return path

    try:
        yield write
    finally:
        for path in written:
            path.unlink(missing_ok=True)


def cache_key(text: str, parts: NbitsParts, windows: int, alone: int) -> str:
    h = hashlib.sha256(
        f"{_VERSION}:{parts.algorithm}:{parts.block_size}:{windows}:{alone}:".encode()
    )
    h.update(text.encode())
    return h.hexdigest()[:12]


def measure(
    parts: NbitsParts,
    nodes: list[FusedNode],
    scores: Mapping[str, float],
    text: str,
    log: Log | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> SensitivityResult:
    """Probe the graph and return each node's 4-bit cost; cached beside the fp32 graph."""
    from edgekit.backends.onnx.probe_ref import SavedReference

    say = log or (lambda _: None)
    side = parts.src.parent
    cache_file = side.parent / f"sensitivity-{cache_key(text, parts, WINDOWS, ALONE)}.json"
    probes = make_probes(nodes, scores, ALONE)
    if cache_file.is_file():
        doc = json.loads(cache_file.read_text(encoding="utf-8"))
        got = {p["label"]: float(p["kld"]) for p in doc["probes"]}
        if all(p.label in got for p in probes):
            for p in probes:
                p.kld = got[p.label]
            say(f"measured sensitivity from the cache: {cache_file}")
            return SensitivityResult(distribute(nodes, probes), probes, 0.0, doc)
    start = time.perf_counter()
    say(f"measuring sensitivity: {len(probes)} probes against an all-8-bit background")
    with _probe_files(parts, nodes) as write:
        starts = {p.label: probe_start(p, nodes) for p in probes}
        cut_at = sorted({s for s in starts.values() if s > 0})
        crossed: list[str] = []

        def returning_crossed(model: Any) -> Any:
            crossed.extend(dict.fromkeys(t for b in cut_at for t in crossing(model.graph, b)))
            return with_outputs(model, crossed)

        background = write("background", frozenset(), returning_crossed)
        saved = SavedReference(
            background,
            text,
            background.with_suffix(".probs"),
            max_windows=WINDOWS,
            crossing=crossed,
        )
        try:
            for i, p in enumerate(probes):
                path = write(p.label, p.members, _suffix_at(starts[p.label]))
                p.kld = saved.kld(path)
                path.unlink()
                say(f"{p.label} {p.kld:.4f}")
                if progress is not None:
                    progress(i + 1, len(probes))
        finally:
            saved.close()
    seconds = time.perf_counter() - start
    costs = distribute(nodes, probes)
    record = {
        "method": "4-bit probes in an 8-bit background, KLD on calibration text",
        "windows": WINDOWS,
        "seconds": round(seconds, 1),
        "probes": [{"label": p.label, "kld": p.kld, "n": len(p.members)} for p in probes],
        "costs": costs,
    }
    tmp_file = cache_file.with_suffix(f".{os.getpid()}.tmp")
    tmp_file.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    tmp_file.replace(cache_file)
    return SensitivityResult(costs, probes, seconds, record)
