#!/usr/bin/env bash
# Sets up .venv with edgekit and a llama-cpp-python built for this platform, then fetches the
# default model. Idempotent: a second run reuses the venv, the cached wheel and the assembled model.
#
#   EXTRAS=...      extras to install (comma separated: dev, tui, convert); default all three
#   PYTHON=python3  interpreter used to create the venv
set -euo pipefail

LLAMA_CPP_VERSION="0.3.36"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
extras="${EXTRAS:-dev,tui,convert}"
py="${PYTHON:-python3}"

# Why per-platform flags: the default x86 build uses -march=native, which turns on Intel AMX, and
# the first decode then segfaults in ggml_backend_amx_mul_mat. A portable AVX2 build is as fast.
# ARM keeps the native build, which enables the repacked kernels that make a Raspberry Pi fast.
llama_cmake_args() {
  if [ -n "${CMAKE_ARGS:-}" ]; then printf '%s' "$CMAKE_ARGS"; return; fi
  case "$(uname -s)-$(uname -m)" in
    Darwin-arm64) printf '%s' "-DGGML_METAL=ON" ;;
    Linux-aarch64|Linux-armv7l) printf '%s' "-DGGML_NATIVE=ON" ;;
    *) printf '%s' "-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON" ;;
  esac
}

# pip caches wheels built from an sdist without CMAKE_ARGS in the key, so a native build could be
# silently reused by a later portable install. Build into a folder keyed by version and flags.
llama_wheel() {
  local args key dir
  args="$(llama_cmake_args)"
  key="$(printf '%s|%s|%s' "$LLAMA_CPP_VERSION" "$args" "$("$py" -c 'import sys;print(sys.version_info[:2])')" | sha256sum | cut -c1-12)"
  dir="${XDG_CACHE_HOME:-$HOME/.cache}/edgekit/wheels/llama_cpp_python-$LLAMA_CPP_VERSION-$key"
  if ! ls "$dir"/llama_cpp_python-*.whl >/dev/null 2>&1; then
    echo "edgekit setup: building llama-cpp-python $LLAMA_CPP_VERSION ($args); this takes a few minutes once" >&2
    mkdir -p "$dir.tmp"
    CMAKE_ARGS="$args" "$venv/bin/pip" wheel --no-cache-dir --no-deps -w "$dir.tmp" \
      "llama-cpp-python==$LLAMA_CPP_VERSION" >&2
    rm -rf "$dir" && mv "$dir.tmp" "$dir"
  fi
  ls "$dir"/llama_cpp_python-*.whl
}

"$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
  echo "edgekit setup: Python >= 3.11 is required ($py is $("$py" --version 2>&1))" >&2; exit 1; }
[ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
"$venv/bin/pip" install -q --upgrade pip >&2
"$venv/bin/pip" install -q "$(llama_wheel)"
"$venv/bin/pip" install -q -e "$root[$extras]"
"$venv/bin/edgekit" model fetch
