"""STREAM-style memory bandwidth: a small C kernel compiled on the fly (OpenMP for threads).

As McCalpin's STREAM: three arrays of doubles, each >= 4x the last-level cache, so nothing is
served from cache; copy, scale, add and triad; bytes counted as STREAM counts them (reads +
writes, no write-allocate traffic); best of several repetitions. numpy would allocate
temporaries for `b + s * c` and count wrong, hence C.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

KERNEL = r"""
#include <stdio.h>
#include <stdlib.h>
#include <omp.h>

static double best(double a, double b) { return a < b ? a : b; }

int main(int argc, char **argv) {
    long n = atol(argv[1]);
    int reps = atoi(argv[2]);
    double *a = malloc(n * sizeof(double)), *b = malloc(n * sizeof(double)),
           *c = malloc(n * sizeof(double));
    if (!a || !b || !c) return 1;
    #pragma omp parallel for schedule(static)
    for (long j = 0; j < n; j++) { a[j] = 1.0; b[j] = 2.0; c[j] = 0.0; }
    double t[5] = {1e30, 1e30, 1e30, 1e30, 1e30}, s = 3.0, r = 0.0;
    for (int k = 0; k < reps; k++) {
        double t0 = omp_get_wtime();
        #pragma omp parallel for schedule(static)
        for (long j = 0; j < n; j++) c[j] = a[j];
        double t1 = omp_get_wtime();
        #pragma omp parallel for schedule(static)
        for (long j = 0; j < n; j++) b[j] = s * c[j];
        double t2 = omp_get_wtime();
        #pragma omp parallel for schedule(static)
        for (long j = 0; j < n; j++) c[j] = a[j] + b[j];
        double t3 = omp_get_wtime();
        #pragma omp parallel for schedule(static)
        for (long j = 0; j < n; j++) a[j] = b[j] + s * c[j];
        double t4 = omp_get_wtime();
        /* not in STREAM: read-only, as a decode streams its weights */
        double sum = 0.0;
        #pragma omp parallel for simd schedule(static) reduction(+:sum)
        for (long j = 0; j < n; j++) sum += b[j];
        double t5 = omp_get_wtime();
        r += sum;
        t[0] = best(t[0], t1 - t0); t[1] = best(t[1], t2 - t1);
        t[2] = best(t[2], t3 - t2); t[3] = best(t[3], t4 - t3); t[4] = best(t[4], t5 - t4);
    }
    double bytes = (double)n * sizeof(double);
    /* a checksum that depends on every element keeps the loops from being optimised away */
    double sum = r; for (long j = 0; j < n; j += 4096) sum += a[j];
    printf("{\"copy\": %g, \"scale\": %g, \"add\": %g, \"triad\": %g, \"read\": %g, "
           "\"check\": %g}\n", 2 * bytes / t[0], 2 * bytes / t[1], 3 * bytes / t[2],
           3 * bytes / t[3], bytes / t[4], sum);
    return 0;
}
"""


def last_level_cache_bytes() -> int:
    """The largest cache sysfs reports (Linux); 32 MiB when unknown, a large desktop L3."""
    sizes = []
    for f in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*/size"):
        text = f.read_text().strip()
        mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1], 1)
        sizes.append(int(text.rstrip("KMG")) * mult)
    return max(sizes, default=32 << 20)


def build_kernel(workdir: Path) -> Path:
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        raise SystemExit("roofline needs a C compiler (cc) for its STREAM kernel")
    src = workdir / "stream.c"
    src.write_text(KERNEL)
    exe = workdir / "stream"
    # -O2 without -march=native: the loops stay plain loads/stores, as STREAM's reference build.
    subprocess.run([cc, "-O2", "-fopenmp", str(src), "-o", str(exe)], check=True)
    return exe


class Stream:
    """Compiled once; `run(threads)` measures all four kernels at that thread count."""

    def __init__(self, array_bytes: int | None = None, reps: int = 5) -> None:
        # 4x the last-level cache per array, as STREAM's rules ask; at least 128 MiB.
        self.array_bytes = array_bytes or max(4 * last_level_cache_bytes(), 128 << 20)
        self.reps = reps
        self._dir = Path(tempfile.mkdtemp(prefix="edgekit-stream-"))
        self.exe = build_kernel(self._dir)

    def run(self, threads: int) -> dict[str, float]:
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "OMP_PROC_BIND": "spread"}
        n = self.array_bytes // 8
        out = subprocess.run(
            [str(self.exe), str(n), str(self.reps)],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        result: dict[str, float] = json.loads(out)
        result.pop("check")
        return result

    def close(self) -> None:
        shutil.rmtree(self._dir, ignore_errors=True)
