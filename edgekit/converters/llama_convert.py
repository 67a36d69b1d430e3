"""HF safetensors -> base GGUF through llama.cpp's own convert_hf_to_gguf.py.

The script comes from the same llama.cpp tree setup built the wheel and the tools from, so what it
writes is what that llama.cpp loads, for every architecture llama.cpp knows. It runs in a child
process: it puts its own gguf-py first on its path, which must not replace the `gguf` package
edgekit imports. Its output goes to a temporary file, renamed when complete.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import gguf

from edgekit.backends.llama_cpp.build import llama_cpp_source
from edgekit.backends.llama_cpp.quantize import atomic_output, check_writable
from edgekit.converters.hf_source import check_hf_dir
from edgekit.errors import ConversionError, UnsupportedArchitectureError
from edgekit.quant.types import CONVERTER_OUTTYPE

Q = gguf.GGMLQuantizationType
_TIMEOUT_S = 3600


def convert_with_llama_cpp(source: Path, out: Path, out_type: Q = Q.F32) -> Path:
    """Write `out` from the Hugging Face folder `source` with llama.cpp's converter."""
    check_hf_dir(source)
    if out_type not in CONVERTER_OUTTYPE:
        raise ConversionError(
            f"base type {out_type.name} is not supported by llama.cpp's converter",
            hint="Use F32, F16, BF16 or Q8_0.",
        )
    weights = sum(f.stat().st_size for f in source.glob("*.safetensors"))
    check_writable(out, 2 * weights)
    script = llama_cpp_source() / "convert_hf_to_gguf.py"
    with atomic_output(out) as tmp:
        command = [sys.executable, str(script), str(source), "--outfile", str(tmp)]
        result = _run([*command, "--outtype", CONVERTER_OUTTYPE[out_type]])
        if result.returncode != 0:
            raise _error(source, result.stdout + result.stderr)
    return out


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    # Its logging and tqdm bars go to the captured output; a failure quotes their tail.
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "TQDM_DISABLE": "1"}
    try:
        return subprocess.run(
            command, capture_output=True, text=True, env=env, timeout=_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        raise ConversionError(f"llama.cpp's converter ran over {_TIMEOUT_S} s") from None


def _error(source: Path, log: str) -> ConversionError:
    lines = [line for line in log.strip().splitlines() if line.strip()]
    last = lines[-1] if lines else "no output"
    if "not supported" in log:
        return UnsupportedArchitectureError(
            f"llama.cpp's converter does not support {source.name}: {last}",
            hint="llama.cpp converts the architectures its convert_hf_to_gguf.py registers.",
        )
    return ConversionError(
        f"llama.cpp's converter failed on {source.name}: {last}",
        hint="Run with EDGEKIT_DEBUG=1 to see its full log.\n" + "\n".join(lines[-8:]),
    )
