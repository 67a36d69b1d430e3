"""llama.cpp's log notes kept off the user's terminal unless they asked for its log."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def quietly(call: Callable[[], T]) -> T:
    """Run call with llama.cpp's notes silenced unless the user asked for its log (--verbose).

    llama-cpp-python maps llama.cpp's log levels one off (its WARN prints as an error) and
    prints level "none" whatever its logger's level (ERROR when not verbose), so context notes
    (the SWA cache size) and LoRA placement notes ("cannot use buft CPU_REPACK, fallback to
    CPU", once per tensor) would reach the terminal. A failure still shows, as the null handle
    the caller checks.
    """
    logger = logging.getLogger("llama-cpp-python")
    level = logger.level
    if level >= logging.ERROR:
        logger.setLevel(logging.CRITICAL + 1)
    try:
        return call()
    finally:
        logger.setLevel(level)
