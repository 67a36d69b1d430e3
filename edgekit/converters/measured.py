"""The measured convert: imatrix, llama.cpp's stock mix, measured costs, a plan, llama-quantize.

    base GGUF --llama-imatrix (calibration text)--> imatrix.gguf --> spike prior (channel RMS)
      --llama-quantize --dry-run STOCK--> stock types      --budget--> bytes never exceeded
      --weighted errors + per-kind KLD probes (edgekit/backends/llama_cpp/sensitivity.py)--> costs
      --plan_mix--> types --llama-quantize --imatrix --tensor-type-file--> output + plan.json

The imatrix and the costs are cached under the edgekit cache, keyed by the base file and the
calibration text, so planning a second size of the same model costs one quantizer run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from gguf import GGMLQuantizationType

from edgekit.backends.llama_cpp import tools
from edgekit.backends.llama_cpp.quantize import atomic_output, check_writable, verify_types
from edgekit.backends.llama_cpp.sensitivity import (
    COST_MODEL,
    Costs,
    Measured,
    Probe,
    ProbeOrder,
    measure,
)
from edgekit.converters import guard
from edgekit.converters.calibrate import spike_profile
from edgekit.converters.gguf import base_gguf, plan_metadata, quantizable
from edgekit.converters.guard import GuardVerdict
from edgekit.converters.request import ConvertRequest, ConvertResult, plan_record
from edgekit.errors import PlanError
from edgekit.gguf import imatrix as imx
from edgekit.gguf.metadata import MetaValue, add_metadata
from edgekit.gguf.reader import read_header
from edgekit.outputs import write_json, write_text
from edgekit.paths import cache_dir
from edgekit.quant.mixplan import MixTarget, padded, padded_bytes, plan_mix, plan_mixes
from edgekit.quant.planner import Decision, Plan
from edgekit.quant.spikes import calibration_hash
from edgekit.quant.types import DEFAULT_MIX, META_PREFIX, MIX_LABEL, bits

Q = GGMLQuantizationType
HEADER_RESERVE = 16 * 1024  # our metadata keys and header padding, kept out of the budget
Progress = Callable[[str], None]
log = logging.getLogger("edgekit.converters.measured")


def _key(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:16]


def _file_key(path: Path) -> str:
    st = path.stat()
    return _key(str(path.resolve()), str(st.st_size), str(st.st_mtime_ns))


@dataclass
class Workspace:
    """Cached artefacts of one (base, calibration text) pair."""

    base: Path
    text: str
    threads: int = 2
    cache: Path | None = None  # default: the edgekit cache
    own_imatrix: bool = True  # False: llama-imatrix (e.g. to compare with it)
    # The probes' calibration windows: two of 128 tokens, the first 32 of each only context. The
    # split within a kind comes from the weighted errors, which see every calibration token;
    # the kinds' rates from these 192 positions. One window (96 positions) ranked two Gemma 3
    # plans at Q5_K_M's size 0.0134 vs 0.0160, the whole calibration text 0.0191 vs 0.0185.
    n_ctx: int = 128
    windows: int = 2

    def __post_init__(self) -> None:
        folder = f"{_file_key(self.base)}-{_key(self.text)}"
        self.root = (self.cache or cache_dir() / "measured") / folder
        self.root.mkdir(parents=True, exist_ok=True)

    @property
    def text_file(self) -> Path:
        path = self.root / "calibration.txt"
        if not path.exists():
            write_text(path, self.text)
        return path

    @property
    def imatrix_path(self) -> Path:
        return self.root / "imatrix.gguf"

    @property
    def _spikes_path(self) -> Path:
        return self.root / "spikes.json"

    def imatrix(self) -> Path:
        """The importance matrix, recorded by edgekit itself in llama.cpp's forward pass (with
        the spike scores, in the same pass); llama-imatrix where that cannot run (3-D expert
        weights) or with `own_imatrix` off."""
        out = self.imatrix_path
        if out.exists():
            return out
        if self.own_imatrix:
            from edgekit.backends.llama_cpp.imatrix_collect import collect
            from edgekit.errors import CalibrationError

            try:
                c = collect(self.base, self.text, threads=self.threads)
            except CalibrationError as e:
                log.info("own imatrix not possible (%s); running llama-imatrix", e.message)
            else:
                write_json(self._spikes_path, c.spike_scores(), indent=0)
                return imx.write(out, c.sums, c.counts, c.chunks, c.chunk_size, ["edgekit"])
        tools.imatrix(self.base, self.text_file, out, threads=self.threads)
        return out

    def quantized(self, ftype: str, pure: bool, imatrix: bool = True) -> Path:
        """A whole-model quantization, with the imatrix unless told otherwise (pure: every
        tensor at ftype's type; else llama.cpp's stock mix)."""
        name = f"{'pure' if pure else 'stock'}-{ftype}{'' if imatrix else '-noimatrix'}.gguf"
        out = self.root / name
        if not out.exists():
            im = self.imatrix() if imatrix else None
            with atomic_output(out) as tmp:
                req = tools.QuantizeRequest(
                    self.base, tmp, ftype, imatrix=im, pure=pure, threads=self.threads
                )
                tools.quantize(req)
        return out

    def weights(self) -> dict[str, Any]:
        return imx.weights(self.imatrix())

    def spike_prior(self) -> dict[str, float]:
        """The spike score of each tensor's input, recorded with the imatrix; from the imatrix's
        column energies (loudest column over the median one) when llama-imatrix made it."""
        self.imatrix()
        if self._spikes_path.exists():
            doc: dict[str, float] = json.loads(self._spikes_path.read_text())
            return doc
        return imx.channel_spikes(self.weights())

    def quantizable(self) -> list[str]:
        """The tensors llama.cpp quantizes (its own --pure Q8_0 dry run says which)."""
        types = tools.stock_types(self.base, "Q8_0", self.threads, pure=True)
        return [n for n, q in types.items() if q == Q.Q8_0]

    def costs(
        self,
        scores: Mapping[str, float] | None = None,
        targets: Sequence[tuple[MixTarget, Mapping[str, Q]]] = (),
    ) -> Measured:
        """Measured costs, cached as JSON. With `targets`, probing stops once their plans are
        settled, so the cache entry is keyed by their budgets too."""
        tag = _key(*(f"{t.stock}:{t.budget_bytes}" for t, _ in targets)) if targets else "all"
        path = self.root / f"costs-{COST_MODEL}-{self.windows}x{self.n_ctx}-{tag}.json"
        if path.exists():
            return _load_costs(path)
        from edgekit.backends.llama_cpp.probe_kld import ProbeKld

        scores = self.spike_prior() if scores is None else scores
        scorer = ProbeKld(self.text, self.n_ctx, self.windows, threads=self.threads)
        measured = measure(
            self.base,
            self.quantizable(),
            self.weights(),
            scorer,
            self.root,
            ProbeOrder(scores, _settled(self.base, targets, scores) if targets else None),
            self.threads,
        )
        doc = measured.to_dict() | {
            "costs": {n: {q.name: v for q, v in c.items()} for n, c in measured.costs.items()}
        }
        write_json(path, doc)
        return measured


def _load_costs(path: Path) -> Measured:
    doc = json.loads(path.read_text())
    costs = {n: {GGMLQuantizationType[k]: v for k, v in c.items()} for n, c in doc["costs"].items()}
    probes = [Probe(p["probe"], p["probe"].split("@")[0], Q.F32, p["kld"]) for p in doc["probes"]]
    return Measured(costs, probes, doc["seconds"], doc)


def _settled(
    base: Path, targets: Sequence[tuple[MixTarget, Mapping[str, Q]]], scores: Mapping[str, float]
) -> Callable[[Costs, Costs], bool]:
    """The plans for every target are the same whatever rate the unprobed kinds turn out to have."""
    tensors = read_header(base).tensors

    def same(lo: Costs, hi: Costs) -> bool:
        return all(
            plan_mix(tensors, stock, lo, t, scores, quiet=True).types
            == plan_mix(tensors, stock, hi, t, scores, quiet=True).types
            for t, stock in targets
        )

    return same


def stock_budget(base: Path, stock: Mapping[str, GGMLQuantizationType]) -> int:
    """The padded tensor bytes of llama.cpp's mix, less room for our metadata."""
    tensors = read_header(base).tensors
    return (
        sum(padded(stock.get(t.name, t.ggml_type), t.n_elements) for t in tensors) - HEADER_RESERVE
    )


def bpw_budget(base: Path, bpw: float) -> int:
    n = sum(t.n_elements for t in read_header(base).tensors)
    return int(bpw * n / 8)


def target_for(
    ws: Workspace, stock_name: str | None, bpw: float | None
) -> tuple[MixTarget, dict[str, Q]]:
    if (stock_name is None) == (bpw is None):
        raise PlanError("give either a stock mix name or --target-bpw")
    if stock_name is not None:
        # The start is the imatrix's stock mix (the file the guard falls back to); the budget is
        # the smaller of the two stock files, as llama.cpp picks other fallbacks with an imatrix.
        stock = tools.stock_types(ws.base, stock_name, ws.threads, imatrix=ws.imatrix())
        plain = tools.stock_types(ws.base, stock_name, ws.threads)
        budget = min(stock_budget(ws.base, stock), stock_budget(ws.base, plain))
        return MixTarget(stock_name, budget, stock_name), stock
    assert bpw is not None
    stock = tools.stock_types(ws.base, "Q8_0", ws.threads)
    return MixTarget("Q8_0", bpw_budget(ws.base, bpw), f"target-bpw {bpw}"), stock


def measured_plans(
    ws: Workspace,
    target: MixTarget,
    stock: Mapping[str, GGMLQuantizationType],
    scores: Mapping[str, float] | None = None,
    measured: Measured | None = None,
) -> tuple[list[Plan], Measured]:
    """The plans for one target, the best first, then the planner's runner-up where there is one
    (the large tensor at another type, mixplan.plan_mixes): what write_guarded measures. Costs
    are measured for the target (probing stops once it is settled) unless `measured` is given."""
    scores = ws.spike_prior() if scores is None else scores
    measured = measured or ws.costs(scores, [(target, stock)])
    tensors = read_header(ws.base).tensors
    plans = plan_mixes(tensors, stock, measured.costs, target, scores)
    for line in plans[0].lines():
        log.info(line)
    return plans, measured


def label_of(p: Plan) -> str:
    by_type: dict[GGMLQuantizationType, int] = {}
    for d in p.decisions:
        if d.rule not in ("1-D", "copy") and bits(d.type) < 16:
            by_type[d.type] = by_type.get(d.type, 0) + d.n_bytes
    top = max(by_type, key=lambda q: by_type[q]) if by_type else Q.Q8_0
    return MIX_LABEL.get(top, "Q8_0")


def metadata(p: Plan, measured: Measured, calibration_hash: str) -> dict[str, MetaValue]:
    """The planned file's keys: the tensors moved from the stock mix, and the probes' KLDs."""
    moved = {f"{d.tensor}={d.type.name}": d.score for d in moved_from_stock(p)}
    probes = [f"{p.label}={p.kld:.6g}" for p in measured.probes] or [""]
    return plan_metadata(p, calibration_hash, moved, {META_PREFIX + "probes": probes})


def moved_from_stock(p: Plan) -> list[Decision]:
    return [d for d in p.decisions if d.rule in ("up", "down")]


def write_measured(
    ws: Workspace,
    out: Path,
    p: Plan,
    measured: Measured,
    calibration_hash: str,
    progress: Callable[[int, int, str], None] | None = None,
) -> Path:
    """llama-quantize with the imatrix and one override per planned tensor, then our metadata."""
    meta = metadata(p, measured, calibration_hash)
    size = sum(padded(d.type, d.n_elements) for d in p.decisions) + read_header(ws.base).data_offset
    check_writable(out, size)
    types = quantizable(p)
    with atomic_output(out) as tmp:
        stage = tmp.with_name(tmp.name + ".q")
        try:
            req = tools.QuantizeRequest(
                ws.base, stage, label_of(p), types, ws.imatrix(), threads=ws.threads
            )
            tools.quantize(req, progress)
            add_metadata(stage, tmp, meta)
        finally:
            stage.unlink(missing_ok=True)
        verify_types(tmp, types)
    _write_plan_json(ws, out, p, measured)
    return out


def _write_plan_json(ws: Workspace, out: Path, p: Plan, measured: Measured, **extra: Any) -> None:
    record = plan_record(p, base=str(ws.base), sensitivity=measured.to_dict(), **extra)
    write_json(out.with_suffix(".plan.json"), record)


def write_guarded(
    ws: Workspace,
    out: Path,
    target: MixTarget,
    plans: Sequence[Plan],
    measured: Measured,
    calibration_hash: str,
    progress: Callable[[int, int, str], None] | None = None,
) -> GuardVerdict | None:
    """write_measured, then the guard (edgekit/converters/guard.py) where the budget is a stock
    mix's: the stock mix replaces the file unless a measured one is better on calibration text.
    `plans` are tried in order (the best predicted first, then the planner's runner-up) until
    one is. None where there is no stock mix of that size to fall back on
    (--target-bpw): the first plan is written."""
    if not target.is_stock_size:
        write_measured(ws, out, plans[0], measured, calibration_hash, progress)
        return None
    stock_file = ws.quantized(target.stock, pure=False)
    judged = 0.0  # the guard's seconds over every plan tried
    for tried, p in enumerate(plans, 1):
        write_measured(ws, out, p, measured, calibration_hash, progress)
        verdict = guard.judge(ws.base, out, stock_file, ws.text, target.stock, ws.threads)
        judged += verdict.seconds
        verdict = replace(verdict, plan=tried, seconds=judged)
        if verdict.shipped == "measured":
            break
    else:
        guard.ship_stock(stock_file, out)
    _write_plan_json(ws, out, p, measured, guard=verdict.to_dict())
    return verdict


def convert_measured(req: ConvertRequest) -> ConvertResult:
    """The measured recipe: llama.cpp's stock mix at --mix's size (or --target-bpw), moved by
    measured costs. Its spike prior comes from the imatrix's recorded activations; a torch
    calibration runs only when --scores or --scores-out asks for a profile."""
    start = time.perf_counter()
    with req.stage("base GGUF") as update:
        base = base_gguf(req.source, req.threads, update)
    profile = None
    if req.scores is not None or req.scores_out is not None:
        profile = spike_profile(req)
    ws = Workspace(base, req.calibration_text, req.threads)
    mix = req.mix if req.mix is not None or req.target_bpw is not None else DEFAULT_MIX
    req.say("measuring tensor sensitivities (cached after the first run)...")
    target, stock = target_for(ws, mix, req.target_bpw)
    plans, measured = measured_plans(ws, target, stock, profile.scores() if profile else None)
    size, verdict = padded_bytes(plans[0]), None
    if not req.dry_run:
        chash = profile.calibration_hash if profile else calibration_hash([ws.text])
        with req.stage("quantizing") as update:
            verdict = write_guarded(ws, req.output, target, plans, measured, chash, update)
        size = req.output.stat().st_size
        if verdict is not None:
            req.say(verdict.line())
    p = plans[verdict.plan - 1] if verdict else plans[0]
    moved = moved_from_stock(p)
    report = {
        "target": target.label,
        "budget_bytes": target.budget_bytes,
        "bits_per_weight": round(p.bpw, 4),
        "seconds": round(time.perf_counter() - start, 1),
        "moved": [
            {"tensor": d.tensor, "type": d.type.name, "rule": d.rule, "note": d.note} for d in moved
        ],
        "guard": verdict.to_dict() if verdict else None,
    }
    return ConvertResult(
        req.output,
        p,
        size,
        time.perf_counter() - start,
        title="measured",
        subtitle=f" mix at {target.label}'s budget",
        measure=f", {p.bpw:.3f} bits/weight",
        note=_note(moved, verdict),
        report=report,
        reference=base,
        profile=profile,
        written=not req.dry_run,
    )


def _note(moved: Sequence[Decision], verdict: GuardVerdict | None) -> str:
    if verdict is not None and verdict.shipped == "stock":
        return f"llama.cpp's stock {verdict.stock} shipped: the measured mix was not better"
    return f"{len(moved)} tensor(s) moved from the stock mix"
