"""Real RPC workers on loopback for tests: llama.cpp's rpc-server, started by edgekit's Worker.

Nothing here fakes a worker: each one is the rpc-server that setup built from the wheel's source.
Tests that need one are skipped where setup has not built it (`edgekit tools list` names it).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

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
