"""The probes of edgekit/backends/llama_cpp/sensitivity.py: a probe's values in the base's own float
type, and the probe file a probe falls back to when the loaded model does not read patched pages."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import gguf
import numpy as np
import numpy.typing as npt
import pytest

from edgekit.backends.llama_cpp import ggml_quant, sensitivity
from edgekit.backends.llama_cpp.sensitivity import Probes, as_float
from edgekit.gguf.compose import float_rows
from edgekit.gguf.reader import read_header
from tests.fixtures.tiny_models import write_tiny_llama

Q = gguf.GGMLQuantizationType


def test_as_float_gives_the_bytes_of_each_float_type() -> None:
    x = np.array([[1.0, -2.5, 3.14159, 1e-3]], dtype=np.float32)
    assert as_float(x, Q.F32).view(np.float32).tolist() == x.ravel().tolist()
    assert as_float(x, Q.F16).view(np.float16).tolist() == x.astype(np.float16).ravel().tolist()
    bf16 = as_float(x, Q.BF16).view(np.uint16).astype(np.uint32) << 16
    assert np.allclose(bf16.view(np.float32), x.ravel(), rtol=2**-8)
    # round to nearest: 1 + 2^-8 + 2^-10 is nearer 1 + 2^-7 than 1
    assert (
        as_float(np.array([1 + 2**-8 + 2**-10], np.float32), Q.BF16).view(np.uint16) == 0x3F81
    ).all()


class _NoSharedPages:
    """A scorer whose loaded model never sees a patch (weights copied, as on a GPU)."""

    def __init__(self) -> None:
        self.files: list[dict[str, Q]] = []

    def set_reference(self, model: Path, scratch: Path | None = None) -> None:
        pass

    def kld(self, model: Path) -> float:
        self.files.append({t.name: t.ggml_type for t in read_header(model).tensors})
        return 0.25

    def kld_patched(self, patches: Iterable[tuple[int, npt.NDArray[np.uint8]]]) -> float:
        return 0.0

    def close(self) -> None:
        pass


def test_a_patch_that_moves_nothing_falls_back_to_probe_files(tmp_path: Path) -> None:
    base = write_tiny_llama(tmp_path / "f16.gguf", n_embd=256, n_ff=512, weight_type=Q.F16)
    h = read_header(base)
    down = [t for t in h.tensors if t.name.endswith("ffn_down.weight")]
    probes, scorer = Probes(h, {}, threads=1), _NoSharedPages()
    assert probes.score(scorer, down, Q.Q4_K, tmp_path) == 0.25
    assert not probes.in_place  # later probes go straight to files
    assert probes.score(scorer, down[:1], Q.Q6_K, tmp_path) == 0.25
    first, second = scorer.files
    assert {first[t.name] for t in down} == {Q.Q4_K}
    assert second[down[0].name] == Q.Q6_K and second[down[1].name] == Q.F16
    assert list(tmp_path.glob("probe-*")) == []


def test_a_patch_holds_the_probe_types_values_in_the_bases_type(tmp_path: Path) -> None:
    base = write_tiny_llama(tmp_path / "f16.gguf", n_embd=256, n_ff=512, weight_type=Q.F16)
    h = read_header(base)
    t = next(t for t in h.tensors if t.name == "blk.0.ffn_down.weight")
    ((at, data),) = Probes(h, {}, threads=2).patches(t, Q.Q3_K)  # one run: a small tensor
    assert at == h.data_offset + t.offset and len(data) == t.n_bytes
    x = float_rows(h, t)
    want = ggml_quant.dequantize(ggml_quant.quantize(x, Q.Q3_K), Q.Q3_K, t.shape[0])
    got = data.view(np.float16).astype(np.float32).reshape(want.shape)
    assert got == pytest.approx(want.astype(np.float16).astype(np.float32))
    assert not np.allclose(got, x)  # Q3_K really moved the values


def test_patches_in_runs_of_rows_are_the_whole_patch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = write_tiny_llama(tmp_path / "f16.gguf", n_embd=256, n_ff=512, weight_type=Q.F16)
    h = read_header(base)
    t = next(t for t in h.tensors if t.name == "blk.0.ffn_down.weight")
    probes = Probes(h, {}, threads=1)
    ((at, whole),) = probes.patches(t, Q.Q4_K)
    monkeypatch.setattr(sensitivity, "PATCH_VALUES", 3 * t.shape[0])  # three rows a run
    runs = list(probes.patches(t, Q.Q4_K))
    assert len(runs) == -(-(t.n_elements // t.shape[0]) // 3)
    starts = [a - at for a, _ in runs]
    assert starts == [sum(len(d) for _, d in runs[:i]) for i in range(len(runs))]
    assert np.array_equal(np.concatenate([d for _, d in runs]), whole)


class _Counting(_NoSharedPages):
    """A scorer whose patches always move the output a little."""

    def kld_patched(self, patches: Iterable[tuple[int, npt.NDArray[np.uint8]]]) -> float:
        return 0.001 * sum(1 for _ in patches)


def test_probing_stops_once_settled_after_enough_kinds(tmp_path: Path) -> None:
    base = write_tiny_llama(tmp_path / "f16.gguf", n_embd=256, n_ff=512, weight_type=Q.F16)
    names = [t.name for t in read_header(base).tensors if len(t.shape) == 2]
    always = sensitivity.ProbeOrder(None, lambda lo, hi: True)
    m = sensitivity.measure(base, names, {}, _Counting(), tmp_path, always, threads=1)
    probed = {p.kind for p in m.probes}
    assert len(probed) == sensitivity.MIN_PROBES  # stopped as soon as allowed, not before
