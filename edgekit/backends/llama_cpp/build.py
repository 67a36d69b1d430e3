"""The one place that knows which llama.cpp edgekit builds, with which flags, and where it lives.

`scripts/setup.sh` asks this module (`python -m edgekit.backends.llama_cpp.build ...`) for the
version, the CMake flags and the cache folder, and the runtime asks it where the tools are, so
the wheel, the tools and the crash probe can never disagree. No llama_cpp import here: setup runs
this before llama-cpp-python is installed.

One CMake build of the llama-cpp-python sdist makes both the Python package's shared libraries
and llama.cpp's own tools (llama-quantize, llama-imatrix, ...), so both are the same source with
the same flags.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shlex
import shutil
import sys
from pathlib import Path

from edgekit.devices.builds import NATIVE_VARIANTS, VARIANTS, default_variant
from edgekit.errors import RuntimeBackendError
from edgekit.paths import cache_dir

LLAMA_CPP_PYTHON_VERSION = "0.3.36"

TOOLS = (
    "llama-quantize",
    "llama-imatrix",
    "llama-perplexity",
    "llama-cli",
    "llama-server",
    "llama-bench",
    "rpc-server",
)
# Names the tools have in this llama.cpp tree, where they differ from the ones users know.
_BINARY = {"rpc-server": "ggml-rpc-server"}


def tool_binary(name: str) -> str:
    """The file name a tool is built as."""
    return _BINARY.get(name, name)


SETUP_HINT = "Run `bash scripts/setup.sh` from the edgekit checkout: it builds llama.cpp's tools."

# Tools come from the same CMake run as the wheel's libraries; the web UI would need a download.
# llama.cpp's tools/ adds the multimodal library itself, which clashes with llama-cpp-python's own
# copy of it (LLAVA_BUILD): edgekit runs no multimodal model, so the wheel's copy is left out.
_COMMON = (
    "-DLLAVA_BUILD=OFF",
    "-DGGML_RPC=ON",
    "-DLLAMA_BUILD_TOOLS=ON",
    "-DLLAMA_BUILD_SERVER=ON",
    "-DLLAMA_BUILD_UI=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",
)


def current_variant() -> str:
    variant = os.environ.get("EDGEKIT_LLAMA_VARIANT") or default_variant()
    if variant not in VARIANTS:
        raise RuntimeBackendError(
            f"unknown llama.cpp build variant {variant!r}",
            hint="EDGEKIT_LLAMA_VARIANT is one of: " + ", ".join(VARIANTS),
        )
    return variant


def cmake_args(variant: str) -> list[str]:
    """The CMake flags of a variant; CMAKE_ARGS from the environment replaces the variant's own."""
    own = os.environ.get("CMAKE_ARGS")
    base = shlex.split(own) if own else list(VARIANTS[variant])
    return [*base, *_COMMON]


def _cpu_fingerprint() -> str:
    """A native build is only valid on a CPU with the same features: key the cache by them."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    return platform.processor() or platform.machine()


def build_key(variant: str) -> str:
    parts = [
        LLAMA_CPP_PYTHON_VERSION,
        variant,
        "\x1f".join(cmake_args(variant)),
        platform.machine(),
    ]
    if variant in NATIVE_VARIANTS:
        parts.append(_cpu_fingerprint())
    return hashlib.sha256("\x1e".join(parts).encode()).hexdigest()[:12]


def build_root(variant: str | None = None) -> Path:
    variant = variant or current_variant()
    name = f"llama-cpp-python-{LLAMA_CPP_PYTHON_VERSION}-{variant}-{build_key(variant)}"
    return cache_dir() / "llama.cpp" / name


def installed_build() -> Path:
    """The build folder setup installed into this environment (it records it beside the venv's
    python), else the one this host's default variant would use."""
    recorded = Path(sys.prefix) / ".llama-build"
    try:
        return Path(recorded.read_text(encoding="utf-8").strip())
    except OSError:
        return build_root()


def llama_cpp_source() -> Path:
    """llama.cpp's source tree (convert_hf_to_gguf.py, gguf-py, tools/) the build came from."""
    tree = installed_build() / "src" / "vendor" / "llama.cpp"
    if not (tree / "convert_hf_to_gguf.py").is_file():
        raise RuntimeBackendError(f"llama.cpp's source tree is not at {tree}", hint=SETUP_HINT)
    return tree


def tool_dirs() -> list[Path]:
    """Where llama.cpp's tools are looked for, in order."""
    dirs = []
    if override := os.environ.get("EDGEKIT_LLAMA_BIN"):
        dirs.append(Path(override))
    dirs.append(Path(sys.prefix) / "bin")
    dirs.append(installed_build() / "build" / "bin")
    return dirs


def tool_path(name: str) -> Path:
    """The path of one of llama.cpp's tools, built by setup from the wheel's own source."""
    for folder in tool_dirs():
        for candidate in (folder / name, folder / tool_binary(name)):
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return candidate
    found = shutil.which(name) or shutil.which(tool_binary(name))
    if found:
        return Path(found)
    raise RuntimeBackendError(f"llama.cpp's {name} was not found", hint=SETUP_HINT)


def _main(argv: list[str]) -> int:
    command = argv[0] if argv else "cmake-args"
    variant = argv[1] if len(argv) > 1 else current_variant()
    if command == "cmake-args":
        print(shlex.join(cmake_args(variant)))
    elif command == "root":
        print(build_root(variant))
    elif command == "version":
        print(LLAMA_CPP_PYTHON_VERSION)
    elif command == "variant":
        print(variant)
    elif command == "tools":  # name=built file, for setup to link
        print(" ".join(f"{name}={tool_binary(name)}" for name in TOOLS))
    else:
        print(f"unknown command {command!r}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
