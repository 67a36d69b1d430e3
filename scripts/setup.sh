#!/usr/bin/env bash
# Sets up .venv with edgekit, llama-cpp-python and llama.cpp's own tools (one build of one source,
# with this host's fastest safe flags), then fetches the default model. Idempotent: a second run
# reuses the venv, the cached build and the assembled model.
#
#   EXTRAS=...                  extras to install (comma separated); default dev,tui,convert
#   PYTHON=python3              interpreter used to create the venv
#   EDGEKIT_LLAMA_VARIANT=...   force a build variant (native-noamx, avx2, native, metal, cuda)
#   CMAKE_ARGS=...              replace the variant's CMake flags entirely
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
extras="${EXTRAS:-dev,tui,convert}"
py="${PYTHON:-python3}"
log_dir="${XDG_CACHE_HOME:-$HOME/.cache}/edgekit/logs"
mkdir -p "$log_dir"
log="$log_dir/setup-$(date +%Y%m%d-%H%M%S).log"
started=$SECONDS

say() { printf 'edgekit setup: %s\n' "$*" >&2; }
fail() { say "FAILED: $*"; say "full log: $log"; tail -n 25 "$log" >&2; exit 1; }
# Run quietly; the output goes to the log, which an error names.
quiet() { "$@" >>"$log" 2>&1 || fail "$*"; }
elapsed() { local s=$((SECONDS - ${1:-$started})); printf '%dm%02ds' $((s / 60)) $((s % 60)); }

"$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
  say "Python >= 3.11 is required ($py is $("$py" --version 2>&1))"; exit 1; }
command -v cmake >/dev/null && command -v c++ >/dev/null || {
  say "a C/C++ compiler and CMake are needed (Debian: apt-get install build-essential cmake)"; exit 1; }

say "log: $log"
[ -x "$venv/bin/python" ] || quiet "$py" -m venv "$venv"
quiet "$venv/bin/pip" install --upgrade pip platformdirs
export PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONWARNINGS=ignore

build_info() { PYTHONPATH="$root" "$venv/bin/python" -m edgekit.backends.llama_cpp.build "$@"; }

# Compile llama.cpp once per version + flags (+ CPU, for native builds): the wheel's libraries and
# the tools come out of the same CMake build folder. The cache folder is written under a temporary
# name and renamed at the end, so an interrupted build is never reused.
build_llama() {
  local variant="$1" dir args version jobs t0
  dir="$(build_info root "$variant")"
  if ls "$dir"/wheel/llama_cpp_python-*.whl >/dev/null 2>&1; then
    say "llama.cpp ($variant) already built: $dir"
    printf '%s' "$dir" >"$venv/.llama-build"; return
  fi
  args="$(build_info cmake-args "$variant")"
  version="$(build_info version)"
  jobs="$(nproc 2>/dev/null || sysctl -n hw.ncpu 2>/dev/null || echo 2)"
  say "building llama.cpp from llama-cpp-python $version ($variant, $jobs jobs): about 6 min on 2 cores, once"
  say "  flags: $args"
  rm -rf "$dir.tmp" && mkdir -p "$dir.tmp/sdist"
  quiet "$venv/bin/pip" download --no-deps --no-binary :all: -d "$dir.tmp/sdist" "llama-cpp-python==$version"
  tar -xzf "$dir.tmp"/sdist/llama_cpp_python-*.tar.gz -C "$dir.tmp"
  mv "$dir.tmp"/llama_cpp_python-"$version" "$dir.tmp/src"
  t0=$SECONDS
  ( while sleep 60; do
      step=$(grep -ao '^\[[0-9]*/[0-9]*\]' "$log" | tail -n 1 || true)
      say "  still compiling ($(elapsed "$t0")) ${step}"
    done ) &
  local ticker=$!
  # The build folder must be the final one: the tools' RPATH points into it.
  rm -rf "$dir" && mv "$dir.tmp" "$dir"
  CMAKE_ARGS="$args" CMAKE_BUILD_PARALLEL_LEVEL="$jobs" "$venv/bin/pip" wheel --no-deps \
    --no-cache-dir -C "build-dir=$dir/build" -w "$dir/wheel.tmp" "$dir/src" >>"$log" 2>&1 || {
    kill "$ticker" 2>/dev/null; rm -rf "$dir"; fail "building llama.cpp ($variant)"; }
  kill "$ticker" 2>/dev/null || true
  find "$dir/build" -name '*.o' -delete
  rm -rf "$dir/sdist" && mv "$dir/wheel.tmp" "$dir/wheel"
  say "built llama.cpp in $(elapsed "$t0")"
  printf '%s' "$dir" >"$venv/.llama-build"
}

install_llama() {
  local dir tool
  dir="$(cat "$venv/.llama-build")"
  quiet "$venv/bin/pip" install --force-reinstall --no-deps "$dir"/wheel/llama_cpp_python-*.whl
  # The tools go beside the venv's python, so `.venv/bin/llama-cli` just works.
  for tool in $(build_info tools); do
    [ -x "$dir/build/bin/${tool#*=}" ] || fail "llama.cpp's ${tool#*=} was not built"
    ln -sf "$dir/build/bin/${tool#*=}" "$venv/bin/${tool%%=*}"
  done
}

variant="$(build_info variant)"
build_llama "$variant"
install_llama
say "installing edgekit[$extras] and its dependencies"
quiet "$venv/bin/pip" install -e "$root[$extras]"
quiet "$venv/bin/edgekit" model fetch
model="$("$venv/bin/edgekit" model path)"

# A crash cannot be caught in-process: decode two tokens in a child. If the fast build crashes on
# this CPU, fall back to the portable one instead of leaving a build that segfaults.
if ! "$venv/bin/python" -m edgekit.backends.llama_cpp.probe build "$model" 1 >>"$log" 2>&1; then
  [ "$variant" = avx2 ] && fail "even the portable llama.cpp build crashes on a test decode"
  say "the $variant build crashed on a test decode on this CPU; building the portable avx2 one"
  export EDGEKIT_LLAMA_VARIANT=avx2
  build_llama avx2
  install_llama
  "$venv/bin/python" -m edgekit.backends.llama_cpp.probe build "$model" 1 >>"$log" 2>&1 ||
    fail "the portable llama.cpp build crashes on a test decode too"
fi
names="$(for t in $(build_info tools); do printf '%s ' "${t%%=*}"; done)"
say "ready in $(elapsed): .venv/bin/edgekit, and llama.cpp's tools in .venv/bin: $names"
