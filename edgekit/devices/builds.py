"""Which llama.cpp build suits which kind of machine: the variants and their CMake flags.

A device profile names its variant; `edgekit.backends.llama_cpp.build` compiles it. The table sits
here, below the back ends, because profiles are validated against it without loading a back end.
"""

from __future__ import annotations

import platform

# Why native without AMX on x86: -march=native is 1.4x faster at prompt processing than the
# portable AVX2 build on an AVX512/VNNI host, but on CPUs with Intel AMX the AMX buffer type
# segfaults on the first decode. GCC honours an explicit -mno-* over -march=native, so the AMX
# kernels are simply not compiled in. `avx2` is the portable fallback when the probe still fails.
_NO_AMX = "-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
VARIANTS: dict[str, tuple[str, ...]] = {
    "native": ("-DGGML_NATIVE=ON",),
    "native-noamx": (
        "-DGGML_NATIVE=ON",
        f"-DCMAKE_C_FLAGS={_NO_AMX}",
        f"-DCMAKE_CXX_FLAGS={_NO_AMX}",
    ),
    "avx2": (
        "-DGGML_NATIVE=OFF",
        "-DGGML_AVX=ON",
        "-DGGML_AVX2=ON",
        "-DGGML_FMA=ON",
        "-DGGML_F16C=ON",
        "-DGGML_BMI2=ON",
    ),
    "metal": ("-DGGML_METAL=ON",),
    "cuda": ("-DGGML_NATIVE=ON", "-DGGML_CUDA=ON"),
}
NATIVE_VARIANTS = frozenset({"native", "native-noamx", "cuda"})


def default_variant(system: str | None = None, machine: str | None = None) -> str:
    """The fastest variant expected to be safe on this host; the probe decides in the end."""
    system = system or platform.system()
    machine = (machine or platform.machine()).lower()
    if system == "Darwin" and machine == "arm64":
        return "metal"
    if machine in {"aarch64", "arm64", "armv7l"}:
        return "native"
    if machine in {"x86_64", "amd64"}:
        return "native-noamx"
    return "native"
