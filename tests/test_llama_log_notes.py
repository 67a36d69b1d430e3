"""llama.cpp's context notes stay out of the terminal unless the user asked for its log."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

llama_logger = pytest.importorskip("llama_cpp._logger")

from edgekit.backends.llama_cpp.hidden import _quietly  # noqa: E402

NOTE = b"llama_kv_cache_iswa: using full-size SWA cache\n"


def _note() -> int:
    llama_logger.llama_log_callback(0, NOTE, None)  # level 0: "none", as llama.cpp logs it
    return 7


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
    assert _quietly(_note) == 7
    assert capsys.readouterr().err == ""
    assert level.level == logging.ERROR


def test_verbose_still_shows_it(level: logging.Logger, capsys: pytest.CaptureFixture[str]) -> None:
    level.setLevel(logging.DEBUG)  # Llama(verbose=True), edgekit's --verbose
    _quietly(_note)
    assert "SWA cache" in capsys.readouterr().err
