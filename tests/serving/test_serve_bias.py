"""`edgekit serve --bias-adapter FILE`: the seam between the front and the guard, end to end.

A real `edgekit serve` (the CLI) with a tiny model and an adapter written by edgekit's erasure
code (random directions: deriving real ones costs minutes, and the seam does not depend on which
directions are erased; test_guard.py derives them). llama-server loads the adapter, the front
hands every served completion (a JSON answer and a stream alike) to the guard, and the guard's
scale changes reach llama-server and the bias history. The loop's own rules are tested in
test_guard.py; here the traffic goes through the front as a client sends it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
from pathlib import Path

import numpy as np
import pytest

from edgekit.bias import history, store
from edgekit.bias.controller import write_erasure
from edgekit.bias.erasure import Directions, ModelWeights
from tests.fixtures.env import REPO_ROOT
from tests.fixtures.lora_server import http, llama_server_or_skip
from tests.fixtures.tiny_models import write_tiny_llama

pytestmark = pytest.mark.timeout(300)
KEY = "bias-seam-key"
CHAT = "/v1/chat/completions"


def _scale(url: str) -> float:
    (adapter,) = http(url + "/lora-adapters", api_key=KEY)
    return float(adapter["scale"])


def _wait_for_scale(url: str, expected: float, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while (scale := _scale(url)) != pytest.approx(expected):
        assert time.monotonic() < deadline, f"the scale stayed at {scale}, not {expected}"
        time.sleep(0.2)


def _stream_text(url: str, body: dict[str, object]) -> str:
    import urllib.request

    req = urllib.request.Request(url + CHAT, json.dumps({**body, "stream": True}).encode())
    req.add_header("Authorization", f"Bearer {KEY}")
    req.add_header("Content-Type", "application/json")
    text = ""
    with urllib.request.urlopen(req, timeout=60) as resp:
        for raw in resp:
            line = raw.decode().strip()
            if line.startswith("data:") and not line.endswith("[DONE]"):
                choices = json.loads(line[5:]).get("choices") or [{}]
                text += choices[0].get("delta", {}).get("content") or ""
    return text


def _adapter(model: Path, path: Path, n_layers: int, n_embd: int) -> Path:
    rng = np.random.default_rng(0)
    bases = {b: rng.standard_normal((2, n_embd)).astype(np.float32) for b in range(n_layers)}
    alphas = dict.fromkeys(range(n_layers), 1.0)
    directions = Directions.orthogonal(bases)
    return write_erasure(path, ModelWeights(model), directions, alphas, {"scale": 1.0})


def test_served_completions_reach_the_guard(tmp_path: Path) -> None:
    llama_server_or_skip()
    model = write_tiny_llama(tmp_path / "tiny-serve.gguf", n_layers=4, seed=7)
    adapter = _adapter(model, tmp_path / "erasure.gguf", n_layers=4, n_embd=64)
    cmd = [sys.executable, "-m", "edgekit", "serve", str(model), "--port", "0", "--json"]
    cmd += ["--api-key", KEY, "--parallel", "2", "--ctx", "256", "--bias-adapter", str(adapter)]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line, proc.communicate(timeout=30)
        ready = json.loads(line)
        url = ready["url"]
        assert ready["bias_adapter"] == str(adapter)
        (loaded,) = http(url + "/lora-adapters", api_key=KEY)
        assert Path(loaded["path"]).resolve() == adapter.resolve()
        assert float(loaded["scale"]) == 1.0  # the guard starts at the calibrated ceiling
        # The tiny model's random words name no group: each output scores clean and relaxes
        # the scale toward the floor (0.5): 1.0 -> 0.85 -> 0.745.
        body = {"messages": [{"role": "user", "content": "the city"}], "max_tokens": 8}
        reply = http(url + CHAT, body, api_key=KEY)
        assert reply["choices"][0]["message"]["content"].strip()
        _wait_for_scale(url, 0.85)
        assert _stream_text(url, body).strip()
        _wait_for_scale(url, 0.745)
        # A client cannot override the guard: per request or for everyone.
        for path, payload in (
            (CHAT, {**body, "lora": [{"id": 0, "scale": 0}]}),
            ("/lora-adapters", [{"id": 0, "scale": 0}]),
        ):
            with pytest.raises(urllib.error.HTTPError) as refused:
                http(url + path, payload, api_key=KEY)
            assert refused.value.code == 403
        (after,) = http(url + "/lora-adapters", api_key=KEY)
        assert float(after["scale"]) == pytest.approx(0.745)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
    assert proc.returncode == 0
    conn = store.connect()
    try:
        session = store.latest_session_of(conn, store.model_fingerprint(model), "serve")
    finally:
        conn.close()
    assert session is not None
    saved = history.loop_state(session_id=session["id"])
    assert saved is not None
    assert [e["strength_after"] for e in saved["events"]] == pytest.approx([0.85, 0.745])
    assert [e["detail"]["path"] for e in saved["events"]] == [CHAT, CHAT]
