from __future__ import annotations

import json
import subprocess
import sys

from edgekit.metrics import peak_rss_bytes, rss_bytes


def test_peak_is_at_least_current() -> None:
    assert peak_rss_bytes() >= rss_bytes() > 0


def test_child_does_not_inherit_the_parents_peak() -> None:
    ballast = bytearray(400 * 2**20)  # make this process's peak clearly larger than a child's
    ballast[::4096] = b"x" * len(ballast[::4096])
    code = "import json; from edgekit.metrics import peak_rss_bytes; print(peak_rss_bytes())"
    child = json.loads(
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout
    )
    assert child < 300 * 2**20 < peak_rss_bytes()
    del ballast
