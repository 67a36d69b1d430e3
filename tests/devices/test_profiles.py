from __future__ import annotations

from pathlib import Path

import gguf
import pytest

from edgekit.devices.profiles import (
    all_profiles,
    host_threads,
    load_profile,
    profile_names,
    scan_profiles,
)
from edgekit.devices.schema import KV_CACHE_TYPES
from edgekit.errors import (
    ProfileError,
    ProfileKeyError,
    ProfileSyntaxError,
    ProfileValueError,
    UnknownDeviceError,
)

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


# --- issue 14, finding 4: one schema for every profile ----------------------------------------


def _profile(user_config: Path, body: str, name: str = "mine") -> Path:
    path = user_config / f"{name}.toml"
    path.write_text(body)
    return path


@pytest.mark.parametrize(
    ("body", "needles"),
    [
        ("[runtime]\ngpu_layer = 5\n", ["'gpu_layer'", "did you mean 'gpu_layers'"]),
        ("[runtime]\ncontxt = 2048\n", ["'contxt'", "'context'"]),
        ("[runtme]\nthreads = 2\n[runtime]\n", ["'runtme'", "'runtime'"]),
        ("threads = 2\n[runtime]\n", ["'threads'", "belongs in [runtime]"]),
        ("[runtime]\n[memory]\nthreads = 2\n", ["'threads'", "belongs in [runtime]"]),
    ],
)
def test_unknown_key_names_file_key_and_nearest(
    user_config: Path, body: str, needles: list[str]
) -> None:
    path = _profile(user_config, body)
    with pytest.raises(ProfileKeyError) as e:
        load_profile("mine")
    assert str(path) in e.value.message
    for needle in needles:
        assert needle in e.value.message


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ('[runtime]\nmmap = "false"\n', "mmap"),  # was read as True
        ("[runtime]\nthreads = 2.5\n", "threads"),  # was truncated to 2
        ("[runtime]\ncontext = 4096.9\n", "context"),
        ("[runtime]\ngpu_layers = -7\n", "gpu_layers"),
        ("[runtime]\n[memory]\nbudget_fraction = 7.5\n", "budget_fraction"),
        ("[runtime]\n[memory]\nbudget_fraction = nan\n", "budget_fraction"),
        ("[runtime]\n[memory]\nbudget_mb = 1500.5\n", "budget_mb"),
        ('[runtime]\nkv_cache_type = "Q4_K"\n', "kv_cache_type"),  # not a KV cache type
        ('[runtime]\nonnx_providers = "CPUExecutionProvider"\n', "onnx_providers"),
        ("[runtime]\nthreads = true\n", "threads"),
        ('[runtime]\nrpc = ["nohost"]\n', "rpc"),
        ('[runtime]\nrpc = "10.0.0.2:50052"\n', "rpc"),
        ("runtime = 5\n", "runtime"),
        ('memory = "x"\n[runtime]\n', "memory"),
    ],
)
def test_wrong_types_and_ranges_are_refused(user_config: Path, body: str, key: str) -> None:
    _profile(user_config, body)
    with pytest.raises(ProfileValueError, match=key):
        load_profile("mine")


def test_kv_cache_types_are_llama_cpp_s() -> None:
    assert set(KV_CACHE_TYPES) == {"F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "IQ4_NL"} | {
        "Q5_0",
        "Q5_1",
    }


@pytest.mark.parametrize(
    "data",
    [
        b"[runtime]\nthreads = 2 # caf\xe9\n",  # Latin-1, not UTF-8
        b"[runtime]\nx = " + b"[" * 5000 + b"]" * 5000 + b"\n",  # was a RecursionError
        b"[runtime]\nx = " + b"{a=" * 3000 + b"1" + b"}" * 3000 + b"\n",
        b"\x00\xff" * 10,
    ],
)
def test_unreadable_profile_is_a_syntax_error(user_config: Path, data: bytes) -> None:
    (user_config / "mine.toml").write_bytes(data)
    with pytest.raises(ProfileSyntaxError, match=r"mine\.toml"):
        load_profile("mine")


def test_valid_profile_with_every_key(user_config: Path) -> None:
    _profile(
        user_config,
        'name = "mine"\ndescription = "d"\n[runtime]\nbackend = "llama.cpp"\nthreads = 2\n'
        "gpu_layers = -1\ncontext = 1024\nbatch = 64\nubatch = 32\nmmap = false\nmlock = true\n"
        'flash_attn = true\nswa_full = true\nkv_cache_type = "q8_0"\n'
        'onnx_providers = ["CPUExecutionProvider"]\nrpc = ["10.0.0.2:50052", "[::1]:50053"]\n'
        '[memory]\nbudget_mb = 900\nbudget_fraction = 1\nfallback_mb = 100\nkind = "ram"\n'
        '[weights]\nrecommended = ["Q4_K_M", "q8_0"]\n[build]\ncmake_args = "-DX=1"\nnotes = ""\n',
    )
    p = load_profile("mine")
    assert (p.threads, p.gpu_layers, p.context, p.batch, p.ubatch) == (2, -1, 1024, 64, 32)
    assert (p.mmap, p.mlock, p.flash_attn, p.swa_full) == (False, True, True, True)
    assert p.kv_cache_type == gguf.GGMLQuantizationType.Q8_0
    assert p.rpc == ("10.0.0.2:50052", "[::1]:50053") and p.memory_budget_bytes == 900 * 2**20


def test_builtin_profiles_pass_the_schema() -> None:
    for name in BUILTIN:
        assert load_profile(name).shadows == "" and load_profile(name).rpc == ()


def test_broken_user_profile_only_fails_its_own_use(user_config: Path) -> None:
    _profile(user_config, "[runtime]\ngpu_layer = 5\n", name="broken")
    entries = {e.name: e for e in scan_profiles()}
    assert entries["broken"].profile is None and isinstance(
        entries["broken"].error, ProfileKeyError
    )
    assert {p.name for p in all_profiles()} >= BUILTIN  # the others still load
    assert load_profile("cpu").threads >= 1
    with pytest.raises(ProfileKeyError):
        load_profile("broken")


def test_user_file_shadowing_a_builtin_is_reported(user_config: Path) -> None:
    _profile(user_config, "[runtime]\nthreads = 1\n", name="cpu")
    entry = {e.name: e for e in scan_profiles()}["cpu"]
    assert entry.user and entry.shadows is not None and entry.shadows.name == "cpu.toml"
    assert load_profile("cpu").shadows.endswith("cpu.toml") and load_profile("cpu").threads == 1


@pytest.mark.parametrize("kv", ["q4_0", "Q8_0", "iq4_nl"])
def test_a_quantized_kv_cache_needs_flash_attention(user_config: Path, kv: str) -> None:
    """llama.cpp cannot create the context otherwise: that was blamed on the model file."""
    _profile(user_config, f'[runtime]\nkv_cache_type = "{kv}"\n')
    with pytest.raises(ProfileValueError, match="flash_attn = true"):
        load_profile("mine")
    _profile(user_config, f'[runtime]\nkv_cache_type = "{kv}"\nflash_attn = true\n')
    assert load_profile("mine").flash_attn


def test_usable_cpus_is_the_affinity_set() -> None:
    import os

    from edgekit.devices.profiles import usable_cpus

    assert usable_cpus() == len(os.sched_getaffinity(0)) >= 1
