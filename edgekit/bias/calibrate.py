"""Constraint weights for a model: derive once from the calibration split, keep as a GGUF.

The vectors live in the user data dir, one file per model fingerprint, in llama.cpp's
control-vector format (usable as `llama-cli --control-vector FILE`), with the schedule, the
calibration facts and the strength `edgekit bias --mitigate` settled on in its metadata.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgekit.bias.cvec_file import ControlVectorFile, read_control_vector, write_control_vector
from edgekit.bias.hidden import HiddenStateReader
from edgekit.bias.probes import build_suite
from edgekit.bias.steering import LayerSchedule, SteeringVectors, control_matrix, derive_vectors
from edgekit.paths import data_dir

# The default schedule: blocks from a sixth to two thirds of the depth, each adding its mean
# contrast once per unit of strength. On the default model (18 blocks: 3..11) early-middle
# blocks moved the calibration bias most per unit of perplexity; the last third did not move it
# at all; block 0 cannot be steered in llama.cpp.
SCHEDULE_WEIGHT = 1.0


def vectors_path(model_hash: str) -> Path:
    return data_dir() / "bias" / "vectors" / f"{model_hash[:16]}.gguf"


def default_schedule(n_layer: int, weight: float = SCHEDULE_WEIGHT) -> LayerSchedule:
    return LayerSchedule.band(max(1, n_layer // 6), max(1, 2 * n_layer // 3 - 1), weight)


def derive(runtime: Any, n_ctx: int = 128) -> SteeringVectors:
    """Per-layer directions from the calibration split's likelihood pairs (held-out unseen)."""
    suite = build_suite("calibration")
    pairs = [pair for p in suite.pairs for pair in p.pairs()]
    reader = HiddenStateReader(runtime.llm, n_ctx)
    try:
        return derive_vectors(reader, runtime.tokenize, pairs)
    finally:
        reader.close()


def save(
    path: Path,
    vectors: SteeringVectors,
    schedule: LayerSchedule,
    model_hint: str,
    meta: dict[str, Any],
) -> ControlVectorFile:
    matrix = control_matrix(vectors, schedule, 1.0)
    full_meta = {
        **meta,
        "schedule": schedule.to_dict(),
        "layer_norms": [round(float(x), 3) for x in vectors.layer_norms],
        "contrast": [round(float(x), 4) for x in vectors.contrast],
        "consistency": [round(float(x), 3) for x in vectors.consistency],
        "n_pairs": vectors.n_pairs,
        "method": "mean of (anti - stereo) block outputs over differing tokens, unit per layer",
    }
    write_control_vector(path, matrix, model_hint, full_meta)
    return ControlVectorFile(matrix, model_hint, full_meta)


def load_or_derive(
    runtime: Any,
    model_hash: str,
    notify: Callable[[str], None] | None = None,
    path: Path | None = None,
) -> ControlVectorFile:
    """The model's saved constraint, or a fresh one derived now (and saved)."""
    p = path or vectors_path(model_hash)
    if p.is_file():
        return read_control_vector(p, runtime.info.block_count)
    if notify:
        notify(f"deriving steering vectors for this model (once), saving to {p}")
    vectors = derive(runtime)
    return save(
        p,
        vectors,
        default_schedule(vectors.n_layer),
        runtime.info.architecture,
        {"model_hash": model_hash, "calibrated_strength": 0.0},
    )


def calibrated_strength(control: ControlVectorFile) -> float:
    return float(control.meta.get("calibrated_strength", 0.0))


def set_calibrated_strength(path: Path, control: ControlVectorFile, strength: float) -> None:
    meta = {**control.meta, "calibrated_strength": strength}
    write_control_vector(path, control.matrix, control.model_hint, meta)
