from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import gguf
import pytest

from edgekit.devices import load_profile
from edgekit.errors import ModelTooBigError
from edgekit.gguf_file import load_model_info
from edgekit.memory import check_fit, estimate_memory, kv_cache_bytes


def test_kv_cache_counts_every_layer_at_full_context(tiny_model: Path) -> None:
    info = load_model_info(tiny_model)
    # 2 layers x 512 cells x (16 + 16) x 2 KV heads x 2 bytes (F16)
    assert kv_cache_bytes(info, 512, 512, gguf.GGMLQuantizationType.F16) == 2 * 512 * 64 * 2


def test_sliding_window_layers_only_keep_the_window(tiny_model: Path) -> None:
    info = replace(load_model_info(tiny_model), sliding_window=128, swa_layers=frozenset({0}))
    full = 4096 * 64 * 2
    window = (128 + 128) * 64 * 2  # window + ubatch cells, padded to 256
    assert kv_cache_bytes(info, 4096, 128, gguf.GGMLQuantizationType.F16) == full + window


def test_quantized_kv_cache_is_smaller(tiny_model: Path) -> None:
    info = load_model_info(tiny_model)
    f16 = kv_cache_bytes(info, 1024, 512, gguf.GGMLQuantizationType.F16)
    q8 = kv_cache_bytes(info, 1024, 512, gguf.GGMLQuantizationType.Q8_0)
    assert q8 == f16 * 34 // 64  # Q8_0: 34 bytes per 32 values


def test_estimate_grows_with_context(tiny_model: Path) -> None:
    info, cpu = load_model_info(tiny_model), load_profile("cpu")
    small = estimate_memory(info, cpu, 256, process_bytes=0)
    big = estimate_memory(info, cpu, 4096, process_bytes=0)
    assert big.kv_cache > small.kv_cache and big.total > small.total
    assert small.weights == info.tensor_bytes


def test_gpu_budget_ignores_host_side_parts(tiny_model: Path) -> None:
    info = load_model_info(tiny_model)
    e = estimate_memory(info, load_profile("cuda"), 512, process_bytes=10**9)
    assert e.against_budget == e.weights + e.kv_cache + e.compute < e.total


def test_too_big_is_refused_with_the_numbers(tiny_model: Path) -> None:
    info = load_model_info(tiny_model)
    tiny_budget = replace(load_profile("rpi4"), memory_budget_bytes=2**20)
    estimate = estimate_memory(info, tiny_budget, 512, process_bytes=0)
    with pytest.raises(
        ModelTooBigError, match=r"needs about .* MiB on rpi4 but the budget is 1 MiB"
    ):
        check_fit(estimate, info, tiny_budget)


def test_fitting_model_passes(tiny_model: Path) -> None:
    info, cpu = load_model_info(tiny_model), load_profile("cpu")
    check_fit(estimate_memory(info, cpu, 512), info, cpu)
