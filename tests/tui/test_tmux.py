"""The dashboard in a real terminal: scripts/tmux_dashboard.sh types a prompt, reads the screen."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.env import REPO_ROOT

SCRIPT = REPO_ROOT / "scripts" / "tmux_dashboard.sh"


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_dashboard_generates_in_a_terminal(tiny_model: Path) -> None:
    env = {**os.environ, "PYTHON": sys.executable, "STREAM_WAIT_S": "1", "PROMPT": "the river"}
    done = subprocess.run(
        [str(SCRIPT), str(tiny_model), "--max-tokens", "48", "--temp", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    final = done.stdout.split("----- after the reply -----")[1]
    assert "tiny-llama · cpu · ready" in final
    assert "> the river" in final
    decode = re.search(r"decode ([\d,.]+) tok/s", final)
    assert decode is not None and float(decode.group(1).replace(",", "")) > 0
    assert re.search(r"RSS\s+[\d.]+ MiB", final)
    assert re.search(r"F32\s+21\s", final)  # the tensor-type table's row
