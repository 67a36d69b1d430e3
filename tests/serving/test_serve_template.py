"""A model file's own chat template never runs as Jinja in the server: llama-server would execute
it in its own engine, outside edgekit's sandbox, where a nested loop holds a slot for good."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgekit.gguf.metadata import add_metadata
from tests.fixtures.env import REPO_ROOT
from tests.fixtures.lora_server import http, llama_server_or_skip
from tests.fixtures.tiny_models import write_tiny_llama

pytestmark = pytest.mark.timeout(300)

# A billion iterations: rendered as Jinja this never finishes.
HOSTILE = "{% for a in range(1000) %}{% for b in range(1000000) %}x{% endfor %}{% endfor %}"


def test_a_hostile_template_cannot_hang_a_slot(tmp_path: Path) -> None:
    llama_server_or_skip()
    plain = write_tiny_llama(tmp_path / "plain.gguf")
    model = tmp_path / "hostile.gguf"
    add_metadata(plain, model, {"tokenizer.chat_template": HOSTILE})
    cmd = [sys.executable, "-m", "edgekit", "serve", str(model), "--port", "0", "--json"]
    cmd += ["--ctx", "256"]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line, proc.communicate(timeout=30)
        url = json.loads(line)["url"]
        body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
        started = time.monotonic()
        reply = http(url + "/v1/chat/completions", body, timeout=60)
        assert time.monotonic() - started < 30
        assert reply["choices"][0]["message"]["content"] is not None
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
    assert proc.returncode == 0
