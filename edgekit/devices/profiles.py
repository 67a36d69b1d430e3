"""Device profiles: the settings a user would otherwise tune by hand for each kind of machine.

Built-in profiles are TOML files in `profiles/` (shipped in the wheel as edgekit.profiles); a user
adds or overrides one by dropping NAME.toml into `~/.config/edgekit/profiles/` (see the README).
Every file is checked against one schema (edgekit.devices.schema) before it is used; "auto" values
(threads, memory budget) are resolved against the machine at load time.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from dataclasses import asdict, dataclass, field, replace
from importlib.resources import files
from pathlib import Path
from typing import Any

import psutil
from gguf import GGMLQuantizationType

from edgekit.devices.builds import VARIANTS, default_variant
from edgekit.devices.schema import check_profile, read_profile_toml
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
    extra: dict[str, Any] = field(default_factory=dict)
    rpc: tuple[str, ...] = ()  # llama.cpp rpc-server workers, "host:port"
    shadows: str = ""  # the built-in profile file this user file replaces

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["kv_cache_type"] = self.kv_cache_type.name
        d["memory_budget_mb"] = round(self.memory_budget_bytes / MiB)
        del d["memory_budget_bytes"]
        return d


def builtin_dir() -> Path:
    return Path(str(files("edgekit.profiles")))


@dataclass(frozen=True)
class ProfileEntry:
    """One profile file as found on disk: parsed, or broken with the reason."""

    name: str
    path: Path
    user: bool
    shadows: Path | None  # the built-in file a user file of the same name replaces
    profile: DeviceProfile | None
    error: ProfileError | None


def _user_files() -> list[Path]:
    user_dir = user_profiles_dir()
    try:
        return sorted(user_dir.glob("*.toml")) if user_dir.is_dir() else []
    except OSError:
        return []  # an unreadable config folder is reported by the profile that needs it


def _profile_files() -> dict[str, Path]:
    found = {p.stem: p for p in sorted(builtin_dir().glob("*.toml"))}
    found.update({p.stem: p for p in _user_files()})
    return found


def profile_names() -> list[str]:
    return sorted(_profile_files())


def scan_profiles() -> list[ProfileEntry]:
    """Every profile, parsed one by one: a broken file is an entry with its error, so that it
    only fails the commands that use it."""
    builtin = {p.stem: p for p in builtin_dir().glob("*.toml")}
    entries = []
    for name, path in sorted(_profile_files().items()):
        user = path.parent != builtin_dir()
        shadows = builtin.get(name) if user else None
        try:
            profile = parse_profile(path)
            if shadows is not None:
                profile = replace(profile, shadows=str(shadows))
            entries.append(ProfileEntry(name, path, user, shadows, profile, None))
        except ProfileError as e:
            entries.append(ProfileEntry(name, path, user, shadows, None, e))
    return entries


def load_profile(name: str) -> DeviceProfile:
    paths = _profile_files()
    if name not in paths:
        raise UnknownDeviceError(
            f"unknown device {name!r}",
            hint=f"Known devices: {', '.join(sorted(paths))}. Add your own as "
            f"{user_profiles_dir() / (name + '.toml')}.",
        )
    profile = parse_profile(paths[name])
    builtin = builtin_dir() / f"{name}.toml"
    if paths[name] != builtin and builtin.is_file():
        profile = replace(profile, shadows=str(builtin))
    return profile


def all_profiles() -> list[DeviceProfile]:
    """The profiles that parse; see scan_profiles for the broken ones."""
    return [e.profile for e in scan_profiles() if e.profile is not None]


def parse_profile(path: Path) -> DeviceProfile:
    raw = read_profile_toml(path)
    check_profile(raw, path)
    return _build(raw, path)


def _build(raw: dict[str, Any], path: Path) -> DeviceProfile:
    """A DeviceProfile from a document check_profile accepted: types and ranges hold here."""
    rt = raw["runtime"]
    mem = raw.get("memory", {})
    budget, source = _memory_budget(mem)
    build = raw.get("build", {})
    batch = rt.get("batch", 512)
    return DeviceProfile(
        name=raw.get("name", path.stem),
        description=raw.get("description", ""),
        backend=rt.get("backend", "llama.cpp"),
        threads=_threads(rt.get("threads", "auto")),
        gpu_layers=rt.get("gpu_layers", 0),
        context=rt.get("context", 4096),
        batch=batch,
        ubatch=rt.get("ubatch", batch),
        mmap=rt.get("mmap", True),
        mlock=rt.get("mlock", False),
        flash_attn=rt.get("flash_attn", False),
        kv_cache_type=GGMLQuantizationType[rt.get("kv_cache_type", "F16").upper()],
        swa_full=rt.get("swa_full", False),
        memory_budget_bytes=budget,
        budget_source=source,
        budget_is_gpu_memory=mem.get("budget_mb") == "auto-gpu" or mem.get("kind") == "gpu",
        recommended_weights=tuple(raw.get("weights", {}).get("recommended", [])),
        cmake_args=build.get("cmake_args")
        or shlex.join(VARIANTS[build.get("variant") or default_variant()]),
        build_notes=build.get("notes", ""),
        onnx_providers=tuple(rt.get("onnx_providers", ["CPUExecutionProvider"])),
        rpc=tuple(rt.get("rpc", [])),
        source=str(path),
    )


def _threads(value: Any) -> int:
    return host_threads() if value == "auto" else int(value)


def usable_cpus() -> int:
    """Logical CPUs this process may run on (taskset and cgroup limits respected)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return os.cpu_count() or 1


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
    return int(value) * MiB, "profile budget"


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
