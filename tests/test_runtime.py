from __future__ import annotations

import sys
from pathlib import Path

import pytest

from edgekit.backends.base import SamplingParams, decode_rate
from edgekit.backends.llama_cpp import probe
from edgekit.errors import BrokenBuildError, RuntimeBackendError
from edgekit.runner import open_runtime, plan_run


@pytest.fixture
def isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("EDGEKIT_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_chat_uses_llama_cpp_templates(tiny_model: Path) -> None:
    runtime = open_runtime(plan_run(tiny_model, "cpu", 256))
    try:
        text = runtime.format_chat([{"role": "user", "content": "hi there"}])
    finally:
        runtime.close()
    # No template in the file: llama.cpp's built-in chatml, ending with the assistant's turn.
    assert text == "<|im_start|>user\nhi there<|im_end|>\n<|im_start|>assistant\n"


def test_streamed_pieces_add_up_to_the_text(tiny_model: Path) -> None:
    runtime = open_runtime(plan_run(tiny_model, "cpu", 256))
    pieces: list[str] = []
    try:
        tokens = runtime.prompt_tokens("the music of the river")
        result = runtime.generate(tokens, SamplingParams(max_tokens=20, seed=5), pieces.append)
    finally:
        runtime.close()
    assert "".join(pieces) == result.text
    assert result.stats.generated_tokens == 20 and result.stats.stop_reason == "length"


def test_probe_passes_and_is_remembered(tiny_model: Path, isolated_cache: Path) -> None:
    probe.ensure_build_works(tiny_model, 1)
    assert list((isolated_cache / "build-probe").glob("*.ok"))


def test_crashing_build_is_explained_not_a_segfault(tiny_model: Path, isolated_cache: Path) -> None:
    segfault = [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"]
    with pytest.raises(BrokenBuildError, match="SIGSEGV") as e:
        probe.ensure_build_works(tiny_model, 1, command=segfault)
    assert e.value.hint and "GGML_NATIVE=OFF" in e.value.hint
    assert not (isolated_cache / "build-probe").exists()


def test_failing_build_reports_its_error(tiny_model: Path, isolated_cache: Path) -> None:
    failing = [sys.executable, "-c", "raise SystemExit('libggml.so: cannot open shared object')"]
    with pytest.raises(RuntimeBackendError, match="cannot open shared object"):
        probe.ensure_build_works(tiny_model, 1, command=failing)


def test_decode_rate_ignores_the_first_token() -> None:
    assert decode_rate(11, first_token_at=1.0, last_token_at=2.0) == pytest.approx(10.0)
    assert decode_rate(1, first_token_at=1.0, last_token_at=1.0) == 0.0
