"""RPC workers on loopback: the protocol checks, --mem, the split, and the failure cases.

Every worker is llama.cpp's rpc-server (tests/fixtures/rpc.py); the model is the tiny GGUF built
on the fly, so these run in seconds. The default model's run is in test_real_model.py.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgekit.backends.base import SamplingParams
from edgekit.backends.llama_cpp.rpc import runtime as rpc_runtime
from edgekit.backends.llama_cpp.rpc.pool import open_pool, plan_pool
from edgekit.backends.llama_cpp.rpc.protocol import (
    RPC_PROTOCOL,
    Endpoint,
    WorkerError,
    WorkerLostError,
    WorkerUnreachableError,
    compatible,
    free_port,
    parse_endpoints,
    probe,
)
from edgekit.backends.runner import open_runtime, plan_run
from edgekit.cli import app
from edgekit.devices.profiles import MiB
from edgekit.errors import ModelTooBigError
from tests.fixtures.rpc import running_workers

GREEDY = SamplingParams(max_tokens=24, temperature=0.0, top_k=1, seed=1)
PROMPT = "hello world, this is a test of the"


def test_protocol_version_matches_the_vendored_header() -> None:
    from edgekit.backends.llama_cpp.build import build_root

    header = build_root() / "src" / "vendor" / "llama.cpp" / "ggml" / "include" / "ggml-rpc.h"
    if not header.is_file():
        pytest.skip("the llama.cpp source is not unpacked here")
    text = header.read_text()
    found = tuple(
        int(text.split(f"#define RPC_PROTO_{part}_VERSION")[1].split()[0])
        for part in ("MAJOR", "MINOR", "PATCH")
    )
    assert found == RPC_PROTOCOL


def test_endpoints_parse_and_reject() -> None:
    eps = parse_endpoints("127.0.0.1:50052, localhost:1,[::1]:7")
    assert [str(e) for e in eps] == ["127.0.0.1:50052", "localhost:1", "[::1]:7"]
    assert all(e.is_loopback for e in eps)
    assert not Endpoint("192.168.1.5", 1).is_loopback
    for bad in ("nohost", "1.2.3.4:", "1.2.3.4:0", "h:99999", "a:1,a:1"):
        with pytest.raises(WorkerError):
            parse_endpoints(bad)


def test_compatibility_rule_is_ggml_rpcs() -> None:
    assert compatible((7, 0, 0)) and compatible((7, 0, 9))
    assert not compatible((6, 0, 0)) and not compatible((7, 1, 0)) and not compatible((2, 0, 0))


def test_worker_reports_version_and_its_mem_cap() -> None:
    with running_workers(None, 123) as (plain, capped):
        a, b = probe(plain.endpoint), probe(capped.endpoint)
        assert a.version == b.version == RPC_PROTOCOL
        assert a.free > 1024 * MiB  # the host's memory, as rpc-server's CPU device reports it
        assert b.free == 123 * MiB and b.devices[0].total == 123 * MiB
        assert capped.relay is not None and capped.relay.bytes_from_worker > 0


def test_wrong_port_is_one_clear_error(tiny_model: Path) -> None:
    port = free_port()
    with pytest.raises(WorkerUnreachableError, match=f"no worker answers at 127.0.0.1:{port}"):
        probe(Endpoint("127.0.0.1", port))
    result = CliRunner().invoke(
        app, ["run", str(tiny_model), "-p", "hi", "--json", "--rpc", f"127.0.0.1:{port}", "-n", "2"]
    )
    assert result.exit_code == 2
    error = json.loads(result.output)
    assert error["error"] == "WorkerUnreachableError"
    assert f"127.0.0.1:{port}" in error["message"] and "edgekit worker" in error["hint"]


def test_two_workers_split_and_greedy_text_match_local(tiny_model: Path) -> None:
    local_plan = plan_run(tiny_model, "cpu", 256)
    local = open_runtime(local_plan)
    try:
        expected = local.generate(local.prompt_tokens(PROMPT), GREEDY).text
    finally:
        local.close()
    with running_workers(100, 300) as workers:
        pool = plan_pool(tiny_model, "cpu", 256, ",".join(str(w.endpoint) for w in workers))
        here, first, second = pool.split.shares
        # tensor_split 100:300 over 3 units (2 blocks + output): llama.cpp's rule gives
        # block 0 to the first worker, block 1 and the output to the second.
        assert (here.layers, first.layers, second.layers) == ((), (0,), (1,))
        assert second.output and not first.output
        runtime = open_pool(pool)
        try:
            text = runtime.generate(runtime.prompt_tokens(PROMPT), GREEDY).text
            sent = [w.relay.bytes_to_worker for w in workers if w.relay]
        finally:
            runtime.close()
    assert text == expected
    # What crossed each socket during loading is that worker's planned weights (+ protocol).
    for share, n in zip((first, second), sent, strict=True):
        assert share.weights <= n <= share.weights * 1.1 + 512 * 1024


def test_model_too_big_for_the_pool_names_every_worker(tiny_model: Path, user_config: Path) -> None:
    (user_config / "small.toml").write_text("[runtime]\nthreads = 1\n[memory]\nbudget_mb = 1\n")
    with running_workers(1, 1) as workers:
        names = [str(w.endpoint) for w in workers]
        with pytest.raises(ModelTooBigError) as err:
            plan_pool(tiny_model, "small", 256, ",".join(names))
    message = err.value.message
    assert all(n in message for n in names) and "local" in message and "MiB" in message


def _kill_after(n: int, pid: int, sig: signal.Signals) -> tuple[list[str], object]:
    pieces: list[str] = []

    def on_token(piece: str) -> None:
        pieces.append(piece)
        if len(pieces) == n:
            os.kill(pid, sig)

    return pieces, on_token


def test_worker_killed_mid_generation_ends_the_turn(
    tiny_model: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """Also: the runtime's child aborts (GGML_ABORT in ggml-rpc), and with gdb installed ggml
    printed its backtrace on the stdout the child shares with the client; GGML_NO_BACKTRACE
    (set by the back end) keeps stdout clean."""
    with running_workers(None, None) as workers:
        pool = plan_pool(tiny_model, "cpu", 256, ",".join(str(w.endpoint) for w in workers))
        runtime = open_pool(pool)
        victim = workers[1]
        assert victim.process is not None
        pieces, on_token = _kill_after(3, victim.process.pid, signal.SIGKILL)
        started = time.monotonic()
        try:
            with pytest.raises(WorkerLostError, match=f"worker {victim.endpoint} stopped"):
                runtime.generate(
                    runtime.prompt_tokens(PROMPT),
                    SamplingParams(max_tokens=400, temperature=0.0, top_k=1),
                    on_token,  # type: ignore[arg-type]
                )
            assert time.monotonic() - started < 30
            assert len(pieces) >= 3
            alive = runtime.worker_alive()
            assert alive == {str(workers[0].endpoint): True, str(victim.endpoint): False}
            with pytest.raises(WorkerLostError):  # the session is over, and says so
                runtime.prompt_tokens("again")
        finally:
            runtime.close()
    out = capfd.readouterr().out
    assert "backtrace" not in out.lower() and "gdb" not in out.lower() and "#0 " not in out


def test_worker_that_stops_answering_hits_the_stall_timeout(
    tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rpc_runtime, "STALL_TIMEOUT_S", 3.0)
    with running_workers(None) as (worker,):
        runtime = open_pool(plan_pool(tiny_model, "cpu", 256, str(worker.endpoint)))
        assert worker.process is not None
        pid = worker.process.pid
        _, on_token = _kill_after(2, pid, signal.SIGSTOP)
        try:
            with pytest.raises(
                WorkerLostError, match=f"worker {worker.endpoint} stopped answering"
            ):
                runtime.generate(
                    runtime.prompt_tokens(PROMPT),
                    SamplingParams(max_tokens=400, temperature=0.0, top_k=1),
                    on_token,  # type: ignore[arg-type]
                )
        finally:
            os.kill(pid, signal.SIGCONT)
            runtime.close()
