"""Real RPC workers on loopback for tests: llama.cpp's rpc-server, started by edgekit's Worker.

Nothing here fakes a worker: each one is the rpc-server that setup built from the wheel's source.
Tests that need one are skipped where setup has not built it (`edgekit tools list` names it).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from edgekit.backends.llama_cpp.rpc import Endpoint, free_port
from edgekit.backends.llama_cpp.worker import Worker
from edgekit.devices import MiB, load_profile
from edgekit.errors import RuntimeBackendError


def rpc_server_or_skip() -> None:
    from edgekit.backends.llama_cpp.build import tool_path

    try:
        tool_path("rpc-server")
    except RuntimeBackendError:
        pytest.skip("rpc-server is not built here (scripts/setup.sh builds it)")


@contextmanager
def running_workers(*mem_mib: int | None) -> Iterator[list[Worker]]:
    """One loopback worker per entry; an int caps what it reports (`edgekit worker --mem`)."""
    rpc_server_or_skip()
    profile = load_profile("cpu")
    workers: list[Worker] = []
    try:
        for mem in mem_mib:
            worker = Worker(
                Endpoint("127.0.0.1", free_port()), profile, None if mem is None else mem * MiB
            )
            workers.append(worker)
            worker.start()
        yield workers
    finally:
        for worker in workers:
            worker.stop()


OTHER_VERSION = "0.3.16"  # llama-cpp-python release whose llama.cpp speaks RPC protocol 2.0.0


def other_version_rpc_server() -> Path:
    """rpc-server built from an older llama.cpp (the sdist of llama-cpp-python 0.3.16, from
    PyPI): a real worker of another version. Built once (~15 min on 2 busy cores) and cached."""
    import os
    import shutil
    import subprocess
    import sys
    import tarfile
    import tempfile

    from edgekit.paths import cache_dir

    override = os.environ.get("EDGEKIT_OTHER_RPC_SERVER")
    if override:
        return Path(override)
    binary = cache_dir() / "rpc-other-version" / OTHER_VERSION / "rpc-server"
    home_cache = Path.home() / ".cache" / "edgekit" / "rpc-other-version" / OTHER_VERSION
    for candidate in (binary, home_cache / "rpc-server"):  # tests isolate EDGEKIT_CACHE_DIR
        if candidate.is_file():
            return candidate
    if shutil.which("cmake") is None:
        pytest.skip("cmake is needed to build an older rpc-server")
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
             "-d", tmp, f"llama-cpp-python=={OTHER_VERSION}"],
            check=True, capture_output=True,
        )  # fmt: skip
        sdist = next(Path(tmp).glob("llama_cpp_python-*.tar.gz"))
        with tarfile.open(sdist) as tar:
            tar.extractall(tmp, filter="data")
        src = Path(tmp) / f"llama_cpp_python-{OTHER_VERSION}" / "vendor" / "llama.cpp"
        build = Path(tmp) / "build"
        flags = ["-DGGML_RPC=ON", "-DLLAMA_CURL=OFF", "-DGGML_NATIVE=OFF", "-DGGML_AVX2=ON",
                 "-DGGML_FMA=ON", "-DGGML_F16C=ON", "-DBUILD_SHARED_LIBS=OFF",
                 "-DGGML_OPENMP=OFF", "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF",
                 "-DLLAMA_BUILD_SERVER=OFF", "-DCMAKE_BUILD_TYPE=Release"]  # fmt: skip
        subprocess.run(
            ["nice", "-n", "10", "cmake", "-S", str(src), "-B", str(build), *flags],
            check=True, capture_output=True,
        )  # fmt: skip
        subprocess.run(
            ["nice", "-n", "10", "cmake", "--build", str(build), "--target", "rpc-server",
             "-j", "2"],
            check=True, capture_output=True,
        )  # fmt: skip
        binary.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(build / "bin" / "rpc-server", binary)
    return binary
