"""The ONNX side of a measured convert (the 4/8-bit store, the probes, the writer) holds about
one float copy of the model at most: weights are read and quantized one node at a time from
disk, plans point into files, probes run one session at a time (edgekit.backends.onnx.store).
Linux only (the high-water mark is reset through /proc)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxruntime_genai")

from tests.fixtures.hf_checkpoints import build_tiny_hf

MIB = 1 << 20


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc")
def test_a_measured_convert_peaks_near_one_float_copy_of_the_model(tmp_path: Path) -> None:
    src = build_tiny_hf(tmp_path / "hf", "qwen2", n_layers=8, hidden=512)
    cmd = [sys.executable, "-m", "tests.fixtures.onnx_peak", str(src), str(tmp_path / "out")]
    done = subprocess.run(
        [*cmd, str(tmp_path / "cache")], capture_output=True, text=True, check=True, timeout=600
    )
    got = json.loads(done.stdout.strip().splitlines()[-1])
    fp32 = got["fp32_bytes"]
    assert fp32 > 60 * MIB  # big enough that copies of it stand out from allocator noise
    # Measured: 1.0-1.1x. The code before the on-disk store (whole-graph copies in memory,
    # five probe sessions at once): 2.5x on this checkpoint, more on bigger ones.
    assert got["above_start"] < 1.5 * fp32 + 16 * MIB, got
