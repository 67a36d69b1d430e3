from __future__ import annotations

from pathlib import Path

import gguf
import pytest

from edgekit.devices import host_threads, load_profile, profile_names
from edgekit.errors import ProfileError, UnknownDeviceError

BUILTIN = {"rpi4", "rpi5", "mac-metal", "cuda", "cpu"}


def test_builtin_profiles_all_load() -> None:
    assert set(profile_names()) >= BUILTIN
    for name in BUILTIN:
        p = load_profile(name)
        assert p.name == name and p.threads >= 1 and p.context > 0 and p.memory_budget_bytes > 0
        assert p.cmake_args and p.recommended_weights and p.onnx_providers


def test_rpi4_is_what_a_pi_owner_would_set() -> None:
    p = load_profile("rpi4")
    assert (p.threads, p.gpu_layers, p.mlock) == (4, 0, False)
    assert p.memory_budget_bytes == 3000 * 2**20
    assert p.kv_cache_type == gguf.GGMLQuantizationType.F16
    assert "Q4_0" in p.recommended_weights


def test_gpu_profiles_offload_everything() -> None:
    assert load_profile("cuda").gpu_layers == -1 and load_profile("cuda").budget_is_gpu_memory
    assert load_profile("mac-metal").gpu_layers == -1


def test_cpu_profile_is_detected_from_the_host() -> None:
    p = load_profile("cpu")
    assert p.threads == host_threads()
    assert "available" in p.budget_source


def test_user_profile_is_listed_and_can_override(user_config: Path) -> None:
    (user_config / "jetson.toml").write_text(
        'name = "jetson"\n[runtime]\nthreads = 6\ngpu_layers = -1\ncontext = 2048\n'
        '[memory]\nbudget_mb = 6000\n[weights]\nrecommended = ["Q4_K_M"]\n'
    )
    (user_config / "rpi4.toml").write_text("[runtime]\nthreads = 3\n[memory]\nbudget_mb = 1500\n")
    assert "jetson" in profile_names()
    assert load_profile("jetson").threads == 6
    assert load_profile("rpi4").threads == 3


def test_unknown_device_names_the_known_ones() -> None:
    with pytest.raises(UnknownDeviceError, match="'toaster'") as e:
        load_profile("toaster")
    assert e.value.hint and "rpi4" in e.value.hint


@pytest.mark.parametrize(
    "body",
    [
        "[runtime\nthreads = 4",  # not TOML
        "[memory]\nbudget_mb = 100\n",  # no [runtime]
        "[runtime]\nthreads = 0\n",
        '[runtime]\nkv_cache_type = "Q9_9"\n',
        '[runtime]\n[weights]\nrecommended = ["Q3_X"]\n',
    ],
)
def test_malformed_profile_is_a_profile_error(user_config: Path, body: str) -> None:
    (user_config / "bad.toml").write_text(body)
    with pytest.raises(ProfileError):
        load_profile("bad")
