"""One path through the real default model (Gemma 3 270M Q4_K_M): run, chat template, memory."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from edgekit.backends.runner import open_runtime, plan_run

pytestmark = pytest.mark.real_model


def _edgekit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edgekit", *args], capture_output=True, text=True, timeout=300
    )


def test_run_default_model_greedy() -> None:
    done = _edgekit("run", "-p", "Paris is the capital city of", "-n", "8", "--temp", "0", "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["text"].startswith(" France")
    stats = data["stats"]
    assert stats["generated_tokens"] == 8 and stats["decode_tokens_per_s"] > 0
    assert stats["prompt_tokens"] == 7  # <bos> + 6 SentencePiece tokens


def test_default_model_chat_template_is_gemmas() -> None:
    runtime = open_runtime(plan_run(None, "cpu", 512))
    try:
        text = runtime.format_chat([{"role": "user", "content": "Hi"}])
    finally:
        runtime.close()
    assert text == "<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n"


@pytest.mark.parametrize("n_ctx", [1024, 4096])
def test_memory_estimate_is_within_ten_percent_of_peak_rss(n_ctx: int) -> None:
    # A fresh process per context, so the peak RSS belongs to that run alone.
    done = subprocess.run(
        [sys.executable, "-m", "tests.fixtures.measure_peak", str(n_ctx)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    estimate, peak = data["estimate"]["total"], data["peak_rss_bytes"]
    assert abs(estimate - peak) / peak <= 0.10, (estimate, peak)
