"""The slot-aware estimate against what llama-server itself allocates, read from its own log:
the KV cache of every slot and one row of logits per slot, for the argv edgekit serve builds."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from edgekit.backends.base import RunPlan
from edgekit.backends.llama_cpp.server import (
    ServerConfig,
    ServerProcess,
    server_argv,
    slot_context,
)
from edgekit.devices.memory import estimate_memory
from edgekit.devices.profiles import MiB, load_profile
from edgekit.gguf.reader import load_model_info
from tests.fixtures.lora_server import free_port, llama_server_or_skip
from tests.fixtures.tiny_models import write_tiny_llama

pytestmark = pytest.mark.timeout(120)
KV_SIZE = re.compile(r"llama_kv_cache: size =\s+([\d.]+) MiB \(\s*(\d+) cells,.*?(\d+)/(\d+) seqs")
OUTPUT = re.compile(r"CPU\s+output buffer size =\s+([\d.]+) MiB")


def _allocated(model: Path, slots: int, ctx: int, folder: Path) -> tuple[float, float, float]:
    """(estimated KV MiB, llama-server's KV MiB, its output buffer MiB); checks the cells."""
    profile = load_profile("cpu")
    info = load_model_info(model)
    estimate = estimate_memory(info, profile, ctx, process_bytes=0, slots=slots)
    plan = RunPlan(info, profile, ctx, estimate, threads=1)
    port = free_port()
    config = ServerConfig(plan, slots, port, "k", extra_args=("--log-verbosity", "4"))
    server = ServerProcess(server_argv(config), folder / "server.log")
    try:
        server.wait_healthy(f"http://127.0.0.1:{port}", 120)
    finally:
        server.stop()
    log = (folder / "server.log").read_text(errors="replace")
    caches = KV_SIZE.findall(log)
    assert caches, log[-2000:]
    for _, cells, used, seqs in caches:
        assert int(used) == int(seqs) == slots
        assert int(cells) <= slot_context(ctx)  # sliding-window layers keep fewer
    (output,) = OUTPUT.findall(log)
    return estimate.kv_cache / MiB, sum(float(c[0]) for c in caches), float(output)


@pytest.mark.parametrize(("slots", "ctx"), [(1, 256), (3, 300)])
def test_estimate_matches_llama_servers_kv_cache(tmp_path: Path, slots: int, ctx: int) -> None:
    llama_server_or_skip()
    model = write_tiny_llama(tmp_path / "tiny.gguf", n_layers=3, context_length=2048)
    estimated, allocated, _ = _allocated(model, slots, ctx, tmp_path)
    assert estimated == pytest.approx(allocated, abs=0.02)  # the log rounds to 0.01 MiB


@pytest.mark.real_model
def test_estimate_matches_on_the_default_model_with_its_sliding_window(tmp_path: Path) -> None:
    """Gemma 3: 15 of 18 layers keep only window + micro-batch cells, per slot."""
    from edgekit.default_model import fetch_default_model

    llama_server_or_skip()
    model = fetch_default_model()
    estimated, allocated, output = _allocated(model, 3, 2048, tmp_path)
    assert estimated == pytest.approx(allocated, abs=0.02)
    vocab = load_model_info(model).vocab_size
    assert output == pytest.approx(3 * vocab * 4 / MiB, abs=0.01)  # one row of logits a slot
