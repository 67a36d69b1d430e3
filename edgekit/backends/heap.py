"""Giving a big step's memory back to the system (glibc's allocator, through ctypes)."""

from __future__ import annotations

import sys


def release_memory() -> None:
    """Hand freed memory back after a big step: the collector for reference cycles (a torch
    model or onnxruntime-genai's builder leaves GBs in them), then glibc's trim, since its
    allocator keeps freed heap pages mapped (another GB after the builder on Qwen2-0.5B)."""
    import ctypes
    import ctypes.util
    import gc

    gc.collect()
    if sys.platform.startswith("linux"):
        libc = ctypes.util.find_library("c")
        trim = getattr(ctypes.CDLL(libc), "malloc_trim", None) if libc else None
        if trim is not None:  # musl has none
            trim(0)
