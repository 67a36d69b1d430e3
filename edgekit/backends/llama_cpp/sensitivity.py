"""Measured sensitivity: how much KL divergence each tensor adds at each type it could take.

Two measurements, one cheap and per tensor, one on the output and per kind of tensor:

  1. the weighted error E_t(q): tensor t quantized to q by llama.cpp's own kernels (in process,
     with its imatrix slice), error summed over a sample of rows, each column weighted by its
     recorded activation energy (the imatrix), i.e. the squared error of t's output on the
     calibration activations, relative to that output's energy. Milliseconds per (tensor,
     type), every type of the ladder.
  2. the KL divergence on calibration text of a probe: the float base with ONE kind of tensor
     (all ffn_down, all attn_v, the token embedding...) at one type, scored in process against
     the base's own logits, which are computed once. The base stays loaded; each probe is
     written over a copy of it in place and undone (`Probes`), so a probe costs its
     quantization and one short forward pass, not a model file written and loaded.

A kind's probe gives its exchange rate alpha = KLD / sum of its tensors' E at the probe type;
the cost of tensor t at type q is then alpha_kind x E_t(q), its KL divergence from the float
base (first order: the output's KL divergence grows with the squared error injected, and
independent errors add). On Gemma 3 and SmolLM2 float-like a kind's KLD at other types than
its probe's came within 0.75-1.5x of that price, but for a symmetric grid's shift of every
row's mean (SmolLM2's attn_v at Q5_1 measured 0.29x its Q5_0 probe's price); a second probe
per kind (the most bits below Q8_0) fixed those prices and changed no ratio of the quant
benchmark beyond its noise, at twice the probing time, so there is one. A planned mix's KLD
came within 10-30% of its predicted sum. Q8_0 is priced too: on a float source it is not free,
and a plan that leaves it unpriced favours parking many tensors there over one large tensor.

Kinds are probed in the order of the spike prior, and probing stops once the plan cannot
change: when the unprobed kinds priced at the lowest and at the highest rate measured so far
give the same plan.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
from gguf import GGMLQuantizationType

from edgekit.backends.llama_cpp import ggml_quant
from edgekit.errors import PlanError
from edgekit.gguf.compose import Source, float_rows, write_gguf
from edgekit.gguf.reader import GGUFHeader, TensorInfo, read_header
from edgekit.quant.planner import compatible
from edgekit.quant.types import CEILING, LADDER, QUANTIZE_TIME, bits

Q = GGMLQuantizationType
SAMPLE_VALUES = 1 << 15  # per tensor for the weighted error; the same rows for every type
PATCH_VALUES = 1 << 22  # values per run of rows written over the probes' copy
MIN_PROBES = 2  # kinds probed before an unprobed kind's rate is bounded by theirs
# Part of the costs' cache key: bumped whenever the same inputs would give other costs.
COST_MODEL = "relative-errors-float-zero"
_BLOCK = re.compile(r"^blk\.\d+\.")
Costs = dict[str, dict[GGMLQuantizationType, float]]
# (costs with the unprobed kinds at the lowest rate, ... at the highest) -> the plan is settled
Settled = Callable[[Costs, Costs], bool]


@dataclass(frozen=True)
class ProbeOrder:
    """Which kinds are probed first and when probing may stop.

    `prior`: a spike score per tensor; kinds go by bytes held x mean score, largest first (by
    bytes alone without one). `settled`: given the lowest and highest costs the unprobed kinds
    could have, whether the plans that matter come out the same either way (None: probe all)."""

    prior: Mapping[str, float] | None = None
    settled: Settled | None = None


class ProbeScorer(Protocol):
    def set_reference(self, model: Path, scratch: Path | None = None) -> None: ...
    def kld(self, model: Path) -> float: ...
    def kld_patched(self, patches: Iterable[tuple[int, npt.NDArray[np.uint8]]]) -> float: ...
    def close(self) -> None: ...


def kind_of(tensor: str) -> str:
    return _BLOCK.sub("", tensor)


def candidates(t: TensorInfo) -> list[GGMLQuantizationType]:
    """The ladder's types as llama.cpp would really write them for t's rows, fewest bits first."""
    out = set()
    for q in LADDER:
        got, _ = compatible(q, t.shape[0])
        if bits(got) <= bits(CEILING):
            out.add(got)
    return sorted(out, key=bits)


@dataclass
class Probe:
    label: str
    kind: str
    type: GGMLQuantizationType
    kld: float = 0.0
    error: float = 0.0  # sum of the kind's weighted errors at `type`
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.kld / self.error if self.error > 0 else 0.0


@dataclass
class Measured:
    costs: Costs
    probes: list[Probe]
    seconds: float
    record: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "seconds": round(self.seconds, 2),
            "probes": [
                {"probe": p.label, "kld": p.kld, "rate": p.rate, "seconds": round(p.seconds, 2)}
                for p in self.probes
            ],
            **self.record,
        }


def _sample(n_rows: int, k: int) -> npt.NDArray[np.int64]:
    return np.unique(np.linspace(0, n_rows - 1, min(k, n_rows)).astype(np.int64))


def weighted_errors(
    h: GGUFHeader,
    tensors: Sequence[TensorInfo],
    weights: Mapping[str, npt.NDArray[np.float32]],
    sample_values: int = SAMPLE_VALUES,
    threads: int = 2,
) -> dict[str, dict[GGMLQuantizationType, float]]:
    """E_t(q) for every candidate type: the squared error of t's output on the calibration
    activations relative to that output's own energy (same weighting, same rows, the same
    rows for every type, so the differences between types are exact for them).

    Relative, because an output's error matters against the output it disturbs: an absolute
    error priced at one rate per kind mispriced tensors of one kind by up to 1000x between
    layers (Gemma 3's post-norms rescale each output; a Llama's residual stream grows with
    depth), the relative one by about 1.8x (log-std 0.5-0.6 of KLD over it, both families)."""
    out: dict[str, dict[GGMLQuantizationType, float]] = {}
    for t in tensors:
        n_rows = t.n_elements // t.shape[0]
        rows = _sample(n_rows, max(8, sample_values // t.shape[0]))
        x = float_rows(h, t, rows)
        w = weights.get(t.name)
        col = np.ones(t.shape[0], np.float32) if w is None else w[: t.shape[0]]
        signal = max(float(np.einsum("ij,j->", x * x, col, dtype=np.float64)), 1e-30)
        out[t.name] = {}
        for q in candidates(t):
            packed = ggml_quant.quantize(x, q, w, threads)
            back = ggml_quant.dequantize(packed, q, t.shape[0], threads)
            err = float(np.einsum("ij,j->", (back - x) ** 2, col, dtype=np.float64))
            out[t.name][q] = err / signal
    return out


def _prior(kinds: Mapping[str, Sequence[TensorInfo]], scores: Mapping[str, float]) -> list[str]:
    """Kinds in probing order: bytes held x mean spike score, largest first."""
    known = [s for s in scores.values() if s > 0]
    med = float(np.median(known)) if known else 1.0

    def weight(kind: str) -> float:
        ts = kinds[kind]
        spike = sum(scores.get(t.name, med) for t in ts) / len(ts)
        return spike * sum(t.n_elements for t in ts)

    return sorted(kinds, key=lambda k: (-weight(k), k))


def probe_type(error: Mapping[GGMLQuantizationType, float]) -> GGMLQuantizationType:
    """A type in the range where the budgets' decisions lie (3 to 6 bits) that injects a real
    error (10x the ceiling's: a type the weights already sit on exactly, as a dequantized
    file's do, injects none), the quickest of those to quantize: a probe quantizes a whole kind.
    `error`: the kind's summed weighted error at each candidate type."""
    floor = 10 * error.get(CEILING, 0.0)
    lossy = [q for q in error if q != CEILING and error[q] > floor]
    mid = [q for q in lossy if 3.0 <= bits(q) < 6.0] or lossy or list(error)
    return min(mid, key=lambda q: (QUANTIZE_TIME.get(q, 4), bits(q)))


class Probes:
    """Probes of the float base: written in place over the scorer's loaded copy of it (the
    kind's tensors at the probe type's values, in the base's own float type: same slot, same
    size) or, where the loaded model does not read the file's pages (a patch then scores
    exactly 0), each probe as a file of its own."""

    def __init__(self, h: GGUFHeader, weights: Any, threads: int) -> None:
        self.h, self.weights, self.threads = h, weights, threads
        self.in_place = True

    def quantized(self, t: TensorInfo, q: GGMLQuantizationType) -> npt.NDArray[np.uint8]:
        x = float_rows(self.h, t)
        return ggml_quant.quantize(x, q, self.weights.get(t.name), self.threads)

    def patches(
        self, t: TensorInfo, q: GGMLQuantizationType
    ) -> Iterator[tuple[int, npt.NDArray[np.uint8]]]:
        """Where t's data sits in the copy, and t at q's values in t's own float type, in runs
        of rows (rows are quantized independently: the same bytes as the whole tensor), so a
        large tensor never has its float copies in memory whole: a 152k x 1536 embedding's
        float32 values, quantized and back, are 2.3 GB, its runs PATCH_VALUES x 8 bytes."""
        n_rows = t.n_elements // t.shape[0]
        step = max(1, PATCH_VALUES // t.shape[0])
        row_bytes = t.n_bytes // n_rows
        w = self.weights.get(t.name)
        for r0 in range(0, n_rows, step):
            x = float_rows(self.h, t, np.arange(r0, min(r0 + step, n_rows)))
            packed = ggml_quant.quantize(x, q, w, self.threads)
            values = ggml_quant.dequantize(packed, q, t.shape[0], self.threads)
            yield self.h.data_offset + t.offset + r0 * row_bytes, as_float(values, t.ggml_type)

    def score(
        self,
        scorer: ProbeScorer,
        tensors: Sequence[TensorInfo],
        q: GGMLQuantizationType,
        work: Path,
    ) -> float:
        if self.in_place:
            kld = scorer.kld_patched(p for t in tensors for p in self.patches(t, q))
            if kld > 0.0:
                return kld
            self.in_place = False  # nothing moved at all: the model computes with a copy
        path = self._probe_file(tensors, q, work / f"probe-{len(tensors)}.gguf")
        try:
            return max(scorer.kld(path), 0.0)
        finally:
            path.unlink(missing_ok=True)

    def _probe_file(
        self, tensors: Sequence[TensorInfo], q: GGMLQuantizationType, out: Path
    ) -> Path:
        moved = {t.name for t in tensors}
        chosen = [
            (t, q, self.quantized(t, q))
            if t.name in moved
            else (t, t.ggml_type, Source(self.h.path, self.h.data_offset + t.offset, t.n_bytes))
            for t in self.h.tensors
        ]
        return write_gguf(self.h, out, chosen)


def as_float(x: npt.NDArray[np.float32], q: GGMLQuantizationType) -> npt.NDArray[np.uint8]:
    """float32 values as the bytes of a float tensor of type q (F32, F16 or BF16)."""
    if q == Q.F16:
        return x.astype(np.float16).view(np.uint8).ravel()
    if q == Q.BF16:  # round to nearest even, as gguf-py and ggml do
        bits32 = x.astype(np.float32).view(np.uint32)
        rounded = (bits32 + 0x7FFF + ((bits32 >> 16) & 1)) >> 16
        return rounded.astype(np.uint16).view(np.uint8).ravel()
    return np.ascontiguousarray(x, dtype=np.float32).view(np.uint8).ravel()


def measure(
    base: Path,
    names: Sequence[str],
    weights: Mapping[str, npt.NDArray[np.float32]],
    scorer: ProbeScorer,
    work: Path,
    order: ProbeOrder = ProbeOrder(),
    threads: int = 2,
) -> Measured:
    """Costs for every tensor in `names` (the ones llama.cpp quantizes) at every candidate type."""
    start = time.perf_counter()
    h = read_header(base)
    tensors = [t for t in h.tensors if t.name in set(names)]
    if not tensors:
        raise PlanError(f"{base.name} has no tensor that llama.cpp quantizes")
    errors = weighted_errors(h, tensors, weights, threads=threads)
    t_errors = time.perf_counter() - start
    kinds: dict[str, list[TensorInfo]] = {}
    for t in tensors:
        kinds.setdefault(kind_of(t.name), []).append(t)
    prober = Probes(h, weights, threads)
    probes: list[Probe] = []
    try:
        scorer.set_reference(base, scratch=work / "reference.gguf")
        for kind in _prior(kinds, order.prior or {}):
            probes.append(_probe(kind, kinds[kind], prober, errors, scorer, work))
            settled = order.settled
            if settled is not None and _settled(kinds, errors, probes, weights, settled):
                break
    finally:
        scorer.close()
    costs = kind_costs(kinds, errors, probes, _geomean, weights)
    record = {
        "kinds": {k: len(v) for k, v in kinds.items()},
        "probed": list(dict.fromkeys(p.kind for p in probes)),
        "unprobed": [k for k in kinds if k not in {p.kind for p in probes}],
        "errors_seconds": round(t_errors, 2),
        "weighted_errors": {n: {q.name: e for q, e in c.items()} for n, c in errors.items()},
    }
    return Measured(costs, probes, time.perf_counter() - start, record)


def _probe(
    kind: str,
    members: Sequence[TensorInfo],
    prober: Probes,
    errors: Mapping[str, Mapping[GGMLQuantizationType, float]],
    scorer: ProbeScorer,
    work: Path,
) -> Probe:
    t0 = time.perf_counter()
    common = set.intersection(*(set(errors[t.name]) for t in members))
    q = probe_type({q: sum(errors[t.name][q] for t in members) for q in common})
    moved = [t for t in members if q in candidates(t)]
    err = sum(errors[t.name][q] for t in moved)  # injected into the float reference
    kld = prober.score(scorer, moved, q, work)
    return Probe(f"{kind}@{q.name}", kind, q, kld, err, time.perf_counter() - t0)


def _alike(
    kinds: Mapping[str, Sequence[TensorInfo]], probes: Sequence[Probe], weights: Mapping[str, Any]
) -> list[Probe]:
    """The valid probes of the kinds whose errors are weighted alike (with an imatrix; or all,
    where none has one): their rates bound an unprobed kind's."""
    valid = [p for p in probes if p.rate > 0]
    weighted = [p for p in valid if any(t.name in weights for t in kinds[p.kind])]
    return weighted or valid


def _settled(
    kinds: Mapping[str, Sequence[TensorInfo]],
    errors: Mapping[str, Mapping[GGMLQuantizationType, float]],
    probes: Sequence[Probe],
    weights: Mapping[str, Any],
    settled: Settled,
) -> bool:
    alike = {p.kind for p in _alike(kinds, probes, weights)}
    if len({p.kind for p in probes}) == len(kinds) or len(alike) < MIN_PROBES:
        return False
    lo, hi = (kind_costs(kinds, errors, probes, pick, weights) for pick in (min, max))
    return settled(lo, hi)


def _geomean(rates: Sequence[float]) -> float:
    pos = [r for r in rates if r > 0]
    return math.exp(sum(math.log(r) for r in pos) / len(pos)) if pos else 0.0


def kind_costs(
    kinds: Mapping[str, Sequence[TensorInfo]],
    errors: Mapping[str, Mapping[GGMLQuantizationType, float]],
    probes: Sequence[Probe],
    unprobed: Callable[[Sequence[float]], float],
    weights: Mapping[str, Any],
) -> Costs:
    """alpha_kind x E_t(q); unprobed kinds at `unprobed` of the rates of the kinds whose
    errors are weighted alike (with an imatrix, or all without one)."""
    rates = {p.kind: p.rate for p in probes}
    alike = [p.rate for p in _alike(kinds, probes, weights)]
    fill = unprobed(alike) if alike else 0.0
    out: Costs = {}
    for kind, members in kinds.items():
        # A probe that moved nothing measurable (rate 0) says nothing: price it as unprobed.
        a = rates[kind] if rates.get(kind, 0.0) > 0 else fill
        for t in members:
            out[t.name] = {q: a * e for q, e in errors[t.name].items()}
    return out
