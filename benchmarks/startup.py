"""How long the CLI takes to start, and which heavy modules `import edgekit.cli` drags in.

Target: `edgekit --help` median wall time < 0.5 s.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from benchmarks._common import median, parse_args, print_table, verdict, write_json

TARGET_S = 0.5
HEAVY = ("torch", "textual", "llama_cpp", "numpy", "gguf", "transformers")
PYTHON = sys.executable
EDGEKIT = str(Path(PYTHON).parent / "edgekit")
COMMANDS = {
    "edgekit --help": [EDGEKIT, "--help"],
    "python -c 'import edgekit.cli'": [PYTHON, "-c", "import edgekit.cli"],
}


def wall(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - start


def heavy_imports() -> list[str]:
    probe = (
        "import sys, json, edgekit.cli; "
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    out = subprocess.run([PYTHON, "-c", probe], check=True, capture_output=True, text=True)
    return list(json.loads(out.stdout))


def slowest_imports(n: int = 8) -> list[tuple[str, float]]:
    """Modules by cumulative import time (which includes whatever each imports first), from one
    -X importtime run: where startup goes, indicative rather than measured."""
    cmd = [PYTHON, "-X", "importtime", "-c", "import edgekit.cli"]
    err = subprocess.run(cmd, check=True, capture_output=True, text=True).stderr
    totals: dict[str, float] = {}
    for line in err.splitlines():
        parts = line.split("|")
        name = parts[-1].strip()
        # Third-party packages as a whole, edgekit's own modules one by one.
        wanted = "." not in name or (name.startswith("edgekit.") and name.count(".") <= 2)
        if len(parts) == 3 and parts[1].strip().isdigit() and wanted:
            totals[name] = int(parts[1]) / 1e6
    return sorted(totals.items(), key=lambda kv: -kv[1])[:n]


def main() -> int:
    args = parse_args(__doc__ or "")
    runs = 3 if args.quick else 10
    for cmd in COMMANDS.values():
        wall(cmd)  # warm-up: page cache and .pyc files
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(runs):
        # Interleaved, so a busy moment on the machine lands on both commands alike.
        for name, cmd in COMMANDS.items():
            times[name].append(wall(cmd))
    heavy = heavy_imports()
    slow = slowest_imports()
    help_s = median(times["edgekit --help"])

    print_table(
        f"Startup wall time ({runs} runs after 1 warm-up)",
        ["command", "median s", "min s", "max s"],
        [[n, f"{median(t):.3f}", f"{min(t):.3f}", f"{max(t):.3f}"] for n, t in times.items()],
    )
    print_table(
        "Heavy modules loaded by `import edgekit.cli`",
        ["module", "imported"],
        [[m, "YES" if m in heavy else "no"] for m in HEAVY],
    )
    print_table(
        "Slowest imports (-X importtime, cumulative)",
        ["package", "s"],
        [[name, f"{secs:.3f}"] for name, secs in slow],
    )
    write_json(
        "startup",
        {
            "quick": args.quick,
            "runs": runs,
            "seconds": times,
            "median_s": {n: median(t) for n, t in times.items()},
            "heavy_modules_imported": heavy,
            "slowest_imports_s": dict(slow),
            "target_s": TARGET_S,
        },
    )
    return verdict(
        help_s < TARGET_S, f"edgekit --help median {help_s:.3f} s (target < {TARGET_S} s)"
    )


if __name__ == "__main__":
    raise SystemExit(main())
