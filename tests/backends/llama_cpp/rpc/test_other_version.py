"""A worker of another llama.cpp version: a real rpc-server built from an older llama.cpp.

llama.cpp's own client aborts the process on a version mismatch; edgekit must refuse first, with
both versions named. The older server speaks protocol 2.0.0, whose HELLO has no payload: the probe
reads that legacy answer too, so the message says which version the worker has.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgekit.backends.llama_cpp.rpc.protocol import (
    RPC_PROTOCOL,
    Endpoint,
    WorkerVersionError,
    free_port,
    is_answering,
    probe,
)
from edgekit.cli import app
from tests.fixtures.rpc import other_version_rpc_server

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]


def test_worker_of_another_version_is_refused_by_name(tiny_model: Path) -> None:
    binary = other_version_rpc_server()
    port = free_port()
    server = subprocess.Popen(
        [str(binary), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = Endpoint("127.0.0.1", port)
    try:
        for _ in range(100):
            if is_answering(endpoint):
                break
            assert server.poll() is None, "the older rpc-server did not start"
            time.sleep(0.1)
        ours = ".".join(map(str, RPC_PROTOCOL))
        with pytest.raises(
            WorkerVersionError, match=rf"protocol 2\.0\.0; this llama\.cpp speaks {ours}"
        ):
            probe(endpoint)
        result = CliRunner().invoke(
            app, ["run", str(tiny_model), "-p", "hi", "-n", "2", "--json", "--rpc", str(endpoint)]
        )
        assert result.exit_code == 2
        error = json.loads(result.output)
        assert error["error"] == "WorkerVersionError" and "2.0.0" in error["message"]
        assert "setup.sh" in error["hint"]
        assert server.poll() is None  # refusing it did not break the worker
    finally:
        server.kill()
        server.wait()
