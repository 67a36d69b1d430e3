"""The default model on two `edgekit worker` processes, driven by `edgekit run --rpc`, as a user
would: the greedy text must equal the local run's. Also: a worker stops cleanly on a signal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from edgekit.backends.llama_cpp.rpc import free_port, is_answering, parse_endpoint
from tests.rpc_fixtures import rpc_server_or_skip

pytestmark = [pytest.mark.real_model, pytest.mark.timeout(1200)]
ROOT = Path(__file__).resolve().parents[1]
ARGS = ["-p", "The capital of France is", "-n", "24", "--temp", "0", "--json"]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


@contextmanager
def worker_process(*extra: str) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgekit", "worker", "--port", str(port), *extra],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    address = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while not is_answering(parse_endpoint(address)):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the worker did not start"
            time.sleep(0.2)
        yield address, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)


def _run(*extra: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "edgekit", "run", *ARGS, *extra],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=900,
        check=True,
    ).stdout
    import json

    text: str = json.loads(out)["text"]
    return text


def test_two_workers_give_the_local_greedy_text() -> None:
    rpc_server_or_skip()
    local = _run()
    with worker_process("--mem", "200") as (a, _), worker_process() as (b, _):
        pooled = _run("--rpc", f"{a},{b}")
    assert pooled == local and len(pooled) > 20


def test_worker_stops_cleanly_on_sigint() -> None:
    rpc_server_or_skip()
    with worker_process() as (address, proc):
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
        assert proc.stderr is not None and "worker stopped" in proc.stderr.read()
        assert not is_answering(parse_endpoint(address))
