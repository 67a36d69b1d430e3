"""`edgekit serve --rpc`: llama-server with its layers on a real loopback worker, split as
`run --rpc` splits them (rpc/pool.py), every slot's KV cache counted on the member that holds it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from tests.fixtures.env import REPO_ROOT
from tests.fixtures.lora_server import http, llama_server_or_skip
from tests.fixtures.rpc import running_workers
from tests.fixtures.tiny_models import write_tiny_llama

pytestmark = pytest.mark.timeout(300)


def test_serve_puts_the_layers_on_the_workers(tmp_path: Path) -> None:
    llama_server_or_skip()
    model = write_tiny_llama(tmp_path / "tiny-rpc.gguf", n_layers=4, seed=3)
    with running_workers(None) as (worker,):
        endpoint = str(worker.endpoint)
        cmd = [sys.executable, "-m", "edgekit", "serve", str(model), "--port", "0", "--json"]
        cmd += ["--rpc", endpoint, "--parallel", "2", "--ctx", "256"]
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        proc = subprocess.Popen(
            cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert line, proc.communicate(timeout=30)
            ready = json.loads(line)
            local, remote = ready["pool"]["shares"]
            assert remote["member"] == endpoint
            assert remote["layers"] == [0, 1, 2, 3] and remote["output"]
            assert local["layers"] == []
            # Two slots of 256 cells: twice the KV cache one slot would need.
            assert remote["kv_cache"] > 0 and ready["memory_estimate"]["slots"] == 2
            body = {"prompt": "the city", "max_tokens": 6, "temperature": 0}
            reply = http(ready["url"] + "/v1/completions", body)
            assert reply["usage"]["completion_tokens"] == 6
            # llama-server itself holds the connection to the worker (its log does not say).
            server = psutil.Process(ready["llama_server_pid"])
            peers = {
                (c.raddr.ip, c.raddr.port)
                for c in server.net_connections(kind="inet")
                if c.raddr and c.status == psutil.CONN_ESTABLISHED
            }
            assert (worker.endpoint.host, worker.endpoint.port) in peers
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(30)
        assert proc.returncode == 0
