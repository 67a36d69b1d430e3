"""llama.cpp's context notes stay out of the terminal unless the user asked for its log."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

llama_logger = pytest.importorskip("llama_cpp._logger")

from edgekit.backends.llama_cpp.quiet import quietly  # noqa: E402

NOTE = b"llama_kv_cache_iswa: using full-size SWA cache\n"
WARNING = b"lora for 'blk.0.attn_output.weight' cannot use buft 'CPU_REPACK', fallback to CPU\n"
GGML_LOG_LEVEL_WARN = 3


def _note() -> int:
    llama_logger.llama_log_callback(0, NOTE, None)  # level 0: "none", as llama.cpp logs it
    return 7


def _warning() -> None:
    llama_logger.llama_log_callback(GGML_LOG_LEVEL_WARN, WARNING, None)


@pytest.fixture
def level() -> Iterator[logging.Logger]:
    logger = logging.getLogger("llama-cpp-python")
    saved = logger.level
    yield logger
    logger.setLevel(saved)


def test_a_note_at_level_none_is_printed_even_when_not_verbose(
    level: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    level.setLevel(logging.ERROR)  # what Llama(verbose=False) sets
    _note()
    assert "SWA cache" in capsys.readouterr().err


def test_quietly_silences_it_returns_the_result_and_restores_the_level(
    level: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    level.setLevel(logging.ERROR)
    assert quietly(_note) == 7
    assert capsys.readouterr().err == ""
    assert level.level == logging.ERROR


def test_verbose_still_shows_it(level: logging.Logger, capsys: pytest.CaptureFixture[str]) -> None:
    level.setLevel(logging.DEBUG)  # Llama(verbose=True), edgekit's --verbose
    quietly(_note)
    assert "SWA cache" in capsys.readouterr().err


def test_a_llama_cpp_warning_prints_when_not_verbose_unless_quietly(
    level: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    # llama-cpp-python maps ggml's WARN (3) to logging.ERROR: the LoRA loader's placement note
    # would print once per tensor on every adapter load.
    level.setLevel(logging.ERROR)
    _warning()
    assert "CPU_REPACK" in capsys.readouterr().err
    quietly(_warning)
    assert capsys.readouterr().err == ""
