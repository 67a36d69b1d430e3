"""Device profiles: the settings a user would otherwise tune by hand for each kind of machine.

Built-in profiles are TOML files in `profiles/` (shipped in the wheel as edgekit.profiles); a user
adds or overrides one by dropping NAME.toml into `~/.config/edgekit/profiles/` (see the README).
"auto" values (threads, memory budget) are resolved against the machine at load time.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tomllib
from dataclasses import asdict, dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

import psutil
from gguf import GGMLQuantizationType, LlamaFileType

from edgekit.errors import ProfileError, UnknownDeviceError
from edgekit.paths import user_profiles_dir

MiB = 1024 * 1024


@dataclass(frozen=True)
class DeviceProfile:
    name: str
    description: str
    backend: str
    threads: int
    gpu_layers: int  # -1 offloads every layer
    context: int
    batch: int
    ubatch: int
    mmap: bool
    mlock: bool
    flash_attn: bool
    kv_cache_type: GGMLQuantizationType
    memory_budget_bytes: int
    budget_source: str  # how the budget was obtained, for messages
    budget_is_gpu_memory: bool
    recommended_weights: tuple[str, ...]
    cmake_args: str
    onnx_providers: tuple[str, ...]
    build_notes: str = ""
    source: str = ""
    swa_full: bool = False  # llama-server's default: sliding-window layers keep only the window
    rpc: tuple[str, ...] = ()  # RPC workers (HOST:PORT) that hold layers; `edgekit run --rpc`
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["kv_cache_type"] = self.kv_cache_type.name
        d["memory_budget_mb"] = round(self.memory_budget_bytes / MiB)
        del d["memory_budget_bytes"]
        return d


def _builtin_dir() -> Path:
    return Path(str(files("edgekit.profiles")))


def _profile_files() -> dict[str, Path]:
    found = {p.stem: p for p in sorted(_builtin_dir().glob("*.toml"))}
    user_dir = user_profiles_dir()
    if user_dir.is_dir():
        found.update({p.stem: p for p in sorted(user_dir.glob("*.toml"))})
    return found


def profile_names() -> list[str]:
    return sorted(_profile_files())


def load_profile(name: str) -> DeviceProfile:
    paths = _profile_files()
    if name not in paths:
        raise UnknownDeviceError(
            f"unknown device {name!r}",
            hint=f"Known devices: {', '.join(sorted(paths))}. Add your own as "
            f"{user_profiles_dir() / (name + '.toml')}.",
        )
    return parse_profile(paths[name])


def all_profiles() -> list[DeviceProfile]:
    return [load_profile(n) for n in profile_names()]


def parse_profile(path: Path) -> DeviceProfile:
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ProfileError(f"cannot read device profile {path}: {e}") from None
    try:
        return _build(raw, path)
    except (KeyError, TypeError, ValueError) as e:
        raise ProfileError(
            f"device profile {path} is invalid: {e}",
            hint="Compare it with a built-in profile: `edgekit devices show cpu`.",
        ) from None


def _build(raw: dict[str, Any], path: Path) -> DeviceProfile:
    rt = raw["runtime"]
    mem = raw.get("memory", {})
    budget, source = _memory_budget(mem)
    gpu_budget = mem.get("budget_mb") == "auto-gpu" or mem.get("kind") == "gpu"
    recommended = tuple(raw.get("weights", {}).get("recommended", []))
    for w in recommended:
        _check_weight_type(w)
    build = raw.get("build", {})
    return DeviceProfile(
        name=str(raw.get("name", path.stem)),
        description=str(raw.get("description", "")),
        backend=str(rt.get("backend", "llama.cpp")),
        threads=_threads(rt.get("threads", "auto")),
        gpu_layers=int(rt.get("gpu_layers", 0)),
        context=_positive(rt.get("context", 4096), "context"),
        batch=_positive(rt.get("batch", 512), "batch"),
        ubatch=_positive(rt.get("ubatch", rt.get("batch", 512)), "ubatch"),
        mmap=bool(rt.get("mmap", True)),
        mlock=bool(rt.get("mlock", False)),
        flash_attn=bool(rt.get("flash_attn", False)),
        kv_cache_type=GGMLQuantizationType[str(rt.get("kv_cache_type", "F16")).upper()],
        swa_full=bool(rt.get("swa_full", False)),
        rpc=_rpc_list(rt.get("rpc", [])),
        memory_budget_bytes=budget,
        budget_source=source,
        budget_is_gpu_memory=gpu_budget,
        recommended_weights=recommended,
        cmake_args=str(build.get("cmake_args", "")),
        build_notes=str(build.get("notes", "")),
        onnx_providers=tuple(rt.get("onnx_providers", ["CPUExecutionProvider"])),
        source=str(path),
    )


def _rpc_list(value: Any) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else list(value)
    return tuple(str(v).strip() for v in items if str(v).strip())


def _positive(value: Any, what: str) -> int:
    n = int(value)
    if n <= 0:
        raise ValueError(f"{what} must be positive, got {value!r}")
    return n


def _check_weight_type(name: str) -> None:
    if name.upper() not in GGMLQuantizationType.__members__ and (
        f"MOSTLY_{name.upper()}" not in LlamaFileType.__members__
    ):
        raise ValueError(f"unknown weight type {name!r} in [weights].recommended")


def _threads(value: Any) -> int:
    if value == "auto":
        return host_threads()
    return _positive(value, "threads")


def host_threads() -> int:
    """Physical cores: llama.cpp's decode is memory-bound, and SMT siblings only add contention."""
    physical = psutil.cpu_count(logical=False) or os.cpu_count() or 1
    try:
        usable = len(os.sched_getaffinity(0))  # respects cgroup/taskset limits
    except AttributeError:
        usable = physical
    return max(1, min(physical, usable))


def _memory_budget(mem: dict[str, Any]) -> tuple[int, str]:
    value = mem.get("budget_mb", "auto")
    fraction = float(mem.get("budget_fraction", 0.85))
    if value == "auto":
        available = psutil.virtual_memory().available
        return int(available * fraction), f"{fraction:.0%} of available RAM"
    if value == "auto-gpu":
        gpu = gpu_memory_bytes()
        if gpu is None:
            return int(mem.get("fallback_mb", 8192)) * MiB, "assumed GPU memory (no nvidia-smi)"
        return int(gpu * fraction), f"{fraction:.0%} of GPU memory"
    return _positive(value, "budget_mb") * MiB, "profile budget"


def gpu_memory_bytes() -> int | None:
    """Total memory of the first NVIDIA GPU, from nvidia-smi; None where there is none."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        out = subprocess.run(
            [exe, "--query-gpu=memory.total", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
        return int(out.splitlines()[0].strip()) * MiB
    except (subprocess.SubprocessError, OSError, ValueError, IndexError):
        return None
