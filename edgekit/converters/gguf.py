"""The convert pipeline shared by the CLI and the benchmark: base GGUF -> scores -> plan -> file.

    source (HF dir | GGUF) --base--> F32/F16 GGUF --calibrate--> SpikeProfile (JSON)
        --plan--> per-tensor types --write--> output GGUF + plan.json (+ metadata keys)

Torch is imported only inside the steps that need it (calibration, HF conversion), through
edgekit.converters, so converting from an existing base GGUF with saved scores needs no torch.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gguf import GGMLQuantizationType, LlamaFileType

from edgekit.backends.llama_cpp.quantize import FILE_TYPE_OF, Progress, write_gguf
from edgekit.errors import ConversionError, OutputPathError
from edgekit.gguf.metadata import MetaValue
from edgekit.gguf.reader import read_header
from edgekit.paths import cache_dir
from edgekit.quant.planner import Plan, Recipe, plan
from edgekit.quant.spikes import SpikeProfile

Q = GGMLQuantizationType
FLOAT_TYPES = frozenset({Q.F32, Q.F16, Q.BF16})
META_PREFIX = "edgekit.quant."


def is_float_gguf(path: Path) -> bool:
    return all(t.ggml_type in FLOAT_TYPES for t in read_header(path).tensors)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and a.samefile(b))
    except OSError:
        return False


def refuse_overwriting_source(source: Path, out: Path, force: bool = False) -> None:
    """An output that resolves to the source (a symlink, a hard link, `./m.gguf` vs `m.gguf`)
    would replace the only copy of the model the user has; that needs an explicit --force."""
    if source.is_dir():
        inside = out.resolve().is_relative_to(source.resolve())
        if inside and not force:
            raise OutputPathError(
                f"the output {out} is inside the source folder {source}",
                hint="Write the output elsewhere, or pass --force.",
            )
        return
    if _same_file(source, out) and not force:
        raise OutputPathError(
            f"the output {out} is the source model itself; converting would overwrite it",
            hint="Choose another -o path, or pass --force to replace the source.",
        )


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
            write_gguf(source, out, None, LlamaFileType.ALL_F32, threads=threads, progress=progress)
        return out
    from edgekit.converters.hf_to_gguf import convert_hf

    out = cache_dir() / "bases" / f"{source.name}-{_fingerprint(source / 'config.json')}-f32.gguf"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        convert_hf(source, out)
    return out


def calibrate_source(
    source: Path,
    calib_text: str,
    trust_remote_code: bool = False,
    progress: Callable[[int, int], None] | None = None,
    quiet: bool = False,
) -> SpikeProfile:
    from edgekit.converters.calibrate import calibrate, load_for_calibration

    loaded = load_for_calibration(source, trust_remote_code, quiet)
    return calibrate(loaded, [calib_text], progress=progress)


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


def plan_metadata(p: Plan, profile: SpikeProfile | None) -> dict[str, MetaValue]:
    kept = p.kept
    return {
        META_PREFIX + "method": p.recipe,
        META_PREFIX + "recipe": json.dumps(p.params, sort_keys=True),
        META_PREFIX + "base_type": p.base_type.name,
        META_PREFIX + "kept_tensors": [d.tensor for d in kept] or [""],
        META_PREFIX + "kept_scores": [float(d.score or 0.0) for d in kept] or [0.0],
        META_PREFIX + "calibration_hash": profile.calibration_hash if profile else "",
        META_PREFIX + "bits_per_weight": round(p.bpw, 4),
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
        plan_metadata(p, profile),
        threads,
        progress,
        expected_bytes=size,
    )
    plan_path = out.with_suffix(".plan.json")
    doc: dict[str, Any] = {
        **p.to_dict(),
        "base": str(base),
        "calibration_hash": profile.calibration_hash if profile else None,
    }
    plan_path.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    return Written(out, plan_path, p)


def read_plan_metadata(path: Path) -> dict[str, Any]:
    md = read_header(path).metadata
    return {k.removeprefix(META_PREFIX): v for k, v in md.items() if k.startswith(META_PREFIX)}
