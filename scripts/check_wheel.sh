#!/usr/bin/env bash
# The packaging round trip a user of the published package goes through: sdist -> wheel -> a fresh
# venv -> `edgekit run` on the default model. Uses the llama-cpp-python wheel setup.sh built (so
# nothing compiles twice) and the default model already assembled in the user cache.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
say() { printf 'check_wheel: %s\n' "$*" >&2; }

"$venv/bin/python" -m build --sdist --outdir "$tmp/dist" "$root" >"$tmp/build.log" 2>&1 ||
  { tail -n 20 "$tmp/build.log" >&2; exit 1; }
sdist="$(ls "$tmp"/dist/edgekit-*.tar.gz)"
say "sdist $(basename "$sdist"): $(tar -tzf "$sdist" | wc -l) files"
# The wheel is built from the sdist alone, so a file the sdist forgets breaks this step.
"$venv/bin/pip" wheel -q --no-deps -w "$tmp/dist" "$sdist" >>"$tmp/build.log" 2>&1 ||
  { tail -n 20 "$tmp/build.log" >&2; exit 1; }
wheel="$(ls "$tmp"/dist/edgekit-*.whl)"
say "wheel $(basename "$wheel")"
python3 -m venv "$tmp/venv"
"$tmp/venv/bin/pip" install -q --disable-pip-version-check \
  "$(cat "$venv/.llama-build")"/wheel/llama_cpp_python-*.whl "$wheel" >>"$tmp/build.log" 2>&1 ||
  { tail -n 20 "$tmp/build.log" >&2; exit 1; }
model="$("$venv/bin/edgekit" model path)"
cd "$tmp"  # nothing from the checkout on sys.path
"$tmp/venv/bin/edgekit" run "$model" -p "The capital of France is" -n 8 --temp 0 --json >"$tmp/run.json"
"$tmp/venv/bin/python" - "$tmp/run.json" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
assert doc["stats"]["generated_tokens"] > 0, doc
print("check_wheel: edgekit run from the wheel generated", doc["stats"]["generated_tokens"], "tokens:", repr(doc["text"]))
PY
