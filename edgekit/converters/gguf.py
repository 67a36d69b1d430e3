"""The convert pipeline shared by the CLI and the benchmark: base GGUF -> scores -> plan -> file.

    source (HF dir | GGUF) --base--> F32/F16 GGUF --calibrate--> SpikeProfile (JSON)
        --plan--> per-tensor types --write--> output GGUF + plan.json (+ metadata keys)

Torch is imported only inside the steps that need it (calibration, HF conversion), through
edgekit.converters, so converting from an existing base GGUF with saved scores needs no torch.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gguf import GGMLQuantizationType, LlamaFileType

from edgekit.backends.llama_cpp.quantize import Progress, QuantizeRun, write_gguf
from edgekit.converters.calibrate import spike_profile
from edgekit.converters.request import (
    ConvertRequest,
    ConvertResult,
    kept_names,
    kept_rows,
    plan_record,
)
from edgekit.errors import ConversionError
from edgekit.gguf.metadata import MetaValue
from edgekit.gguf.reader import read_header
from edgekit.outputs import check_output, write_json
from edgekit.paths import cache_dir
from edgekit.quant.planner import Plan, Recipe, plan
from edgekit.quant.spikes import SpikeProfile
from edgekit.quant.types import FILE_TYPE_OF, FLOAT_TYPES, META_PREFIX

Q = GGMLQuantizationType


def is_float_gguf(path: Path) -> bool:
    return all(t.ggml_type in FLOAT_TYPES for t in read_header(path).tensors)


def refuse_overwriting_source(source: Path, out: Path, force: bool = False) -> None:
    """An output that resolves to the source (a symlink, a hard link, `./m.gguf` vs `m.gguf`)
    would replace the only copy of the model the user has; that needs an explicit --force. The
    output's folder is checked here too, before minutes of calibration."""
    check_output(out, inputs=[source], force=force)
    # The plan is written beside the model after the work: an input in its place is refused now.
    check_output(out.with_suffix(".plan.json"), inputs=[source])


def _fingerprint(path: Path) -> str:
    st = path.stat()
    key = f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}"
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def base_gguf(source: Path, threads: int = 2, progress: Progress | None = None) -> Path:
    """A float GGUF to quantize from: the source itself, or a cached dequantized/converted copy.

    A quantized source is expanded to F32 by llama.cpp's own dequantizer (exact), so the
    "full precision" reference of such a model is its dequantized file, not the original weights.
    """
    if source.is_file():
        if is_float_gguf(source):
            return source
        out = cache_dir() / "bases" / f"{source.stem}-{_fingerprint(source)}-f32.gguf"
        if not out.exists():
            out.parent.mkdir(parents=True, exist_ok=True)
            run = QuantizeRun(threads, progress)
            write_gguf(source, out, None, LlamaFileType.ALL_F32, run=run)
        return out
    from edgekit.converters.hf_to_gguf import convert_hf

    out = cache_dir() / "bases" / f"{source.name}-{_fingerprint(source / 'config.json')}-f32.gguf"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        convert_hf(source, out)
    return out


def plan_for(
    base: Path,
    profile: SpikeProfile | None,
    base_type: GGMLQuantizationType,
    recipe: Recipe,
    output_type: GGMLQuantizationType = Q.Q6_K,
    base_mix: Mapping[str, GGMLQuantizationType] | None = None,
) -> Plan:
    tensors = read_header(base).tensors
    scores = profile.scores() if profile else {}
    return plan(tensors, scores, base_type, recipe, output_type, base_mix)


def plan_metadata(
    p: Plan,
    calibration_hash: str,
    kept: Mapping[str, float | None],
    extra: Mapping[str, MetaValue] | None = None,
) -> dict[str, MetaValue]:
    """The metadata keys a planned GGUF carries: the recipe, and the tensors it chose (`kept`:
    label -> score) with the calibration they were chosen on."""
    return {
        META_PREFIX + "method": p.recipe,
        META_PREFIX + "recipe": json.dumps(p.params, sort_keys=True),
        META_PREFIX + "base_type": p.base_type.name,
        META_PREFIX + "kept_tensors": list(kept) or [""],
        META_PREFIX + "kept_scores": [float(s or 0.0) for s in kept.values()] or [0.0],
        META_PREFIX + "calibration_hash": calibration_hash,
        META_PREFIX + "bits_per_weight": round(p.bpw, 4),
        **(extra or {}),
    }


def expected_file_size(base: Path, p: Plan) -> int:
    """Tensor bytes plus padding, and the header of the base (the vocabulary dominates it)."""
    header = read_header(base)
    align = 32
    data = sum(-(-d.n_bytes // align) * align for d in p.decisions)
    return header.data_offset + data + 4096


def quantizable(p: Plan) -> dict[str, GGMLQuantizationType]:
    """The plan minus 1-D tensors and copies (llama.cpp never quantizes those anyway)."""
    return {d.tensor: d.type for d in p.decisions if d.rule not in ("1-D", "copy")}


@dataclass
class Written:
    path: Path
    plan_path: Path
    plan: Plan


def write_planned(
    base: Path,
    out: Path,
    p: Plan,
    profile: SpikeProfile | None,
    threads: int = 2,
    progress: Progress | None = None,
) -> Written:
    ftype = FILE_TYPE_OF.get(p.base_type)
    if ftype is None:
        supported = ", ".join(t.name for t in FILE_TYPE_OF)
        raise ConversionError(f"base type {p.base_type.name} is not supported ({supported})")
    size = expected_file_size(base, p)
    write_gguf(
        base,
        out,
        quantizable(p),
        ftype,
        plan_metadata(
            p,
            profile.calibration_hash if profile else "",
            {d.tensor: d.score for d in p.kept},
        ),
        QuantizeRun(threads, progress),
        expected_bytes=size,
    )
    plan_path = out.with_suffix(".plan.json")
    chash = profile.calibration_hash if profile else None
    write_json(plan_path, plan_record(p, base=str(base), calibration_hash=chash))
    return Written(out, plan_path, p)


def convert_gguf(req: ConvertRequest) -> ConvertResult:
    """The spike, target-bpw and random recipes: base GGUF, spike profile, plan, quantize."""
    if req.plan_recipe is None:
        raise ConversionError(f"the {req.recipe} recipe has no spike plan")
    start = time.perf_counter()
    with req.stage("base GGUF") as update:
        base = base_gguf(req.source, req.threads, update)
    profile = spike_profile(req)
    p = plan_for(base, profile, req.base_type, req.plan_recipe, req.output_type)
    size = expected_file_size(base, p)
    if not req.dry_run:
        with req.stage("quantizing") as update:
            write_planned(base, req.output, p, profile, req.threads, update)
        size = req.output.stat().st_size
    return ConvertResult(
        req.output,
        p,
        size,
        time.perf_counter() - start,
        title=p.recipe,
        subtitle=f" over {p.base_type.name}",
        measure=f", {p.bpw:.3f} bits/weight",
        note=f"kept high: {kept_names(p)}",
        report={"plan": p.to_dict(tensors=False), "kept": kept_rows(p)},
        show_plan=req.dry_run,
        reference=base,
        profile=profile,
        written=not req.dry_run,
    )


def read_plan_metadata(path: Path) -> dict[str, Any]:
    md = read_header(path).metadata
    return {k.removeprefix(META_PREFIX): v for k, v in md.items() if k.startswith(META_PREFIX)}
