"""The llama.cpp back end's shared plumbing: loading the library, opening a model through the C
API, tokenizing with a file's own vocabulary, and filling a batch.

Every module of this back end that talks to llama.cpp below llama-cpp-python's `Llama` wrapper
goes through here, so a change of llama.cpp's C API (a field of llama_batch, a parameter of the
context) is made once.
"""

from __future__ import annotations

import ctypes
import importlib
import logging
import os
from collections.abc import Callable, Container, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import numpy.typing as npt

from edgekit.backends.llama_cpp.packing import Pack
from edgekit.errors import EdgekitError, RuntimeBackendError

F32 = npt.NDArray[np.float32]


def import_llama_cpp() -> ModuleType:
    try:
        return importlib.import_module("llama_cpp")
    except ImportError as e:
        raise RuntimeBackendError(
            f"llama-cpp-python is not installed or does not load: {e}",
            hint="Run scripts/setup.sh, which builds it with the right flags for this machine.",
        ) from None


def ggml_base() -> ctypes.CDLL:
    """libggml-base from llama-cpp-python's own lib folder (the one its libllama links)."""
    import llama_cpp
    from llama_cpp._ctypes_extensions import load_shared_library

    lib: ctypes.CDLL = load_shared_library("ggml-base", Path(llama_cpp.__file__).parent / "lib")
    lib.ggml_get_name.argtypes = [ctypes.c_void_p]
    lib.ggml_get_name.restype = ctypes.c_char_p
    lib.ggml_nelements.argtypes = [ctypes.c_void_p]
    lib.ggml_nelements.restype = ctypes.c_int64
    lib.ggml_nrows.argtypes = [ctypes.c_void_p]
    lib.ggml_nrows.restype = ctypes.c_int64
    lib.ggml_nbytes.argtypes = [ctypes.c_void_p]
    lib.ggml_nbytes.restype = ctypes.c_size_t
    lib.ggml_backend_tensor_get.argtypes = [
        ctypes.c_void_p,
        ctypes.c_void_p,
        ctypes.c_size_t,
        ctypes.c_size_t,
    ]
    lib.ggml_backend_tensor_get.restype = None
    return lib


def loaded_libggml() -> Any:
    """The libggml that libllama itself uses. The wheel ships libggml.so and libggml.so.0 as
    separate copies, and llama_cpp._ggml opens the first: a second copy, with its own device
    registry that llama.cpp never reads. Asking the loader for the soname libllama linked, with
    RTLD_NOLOAD, returns the copy already in the process."""
    import_llama_cpp()
    for name in ("libggml.so.0", "libggml.0.dylib", "libggml.dylib", "ggml.dll"):
        try:
            return ctypes.CDLL(name, mode=getattr(os, "RTLD_NOLOAD", 0) | ctypes.RTLD_GLOBAL)
        except OSError:
            continue
    from llama_cpp import _ggml

    return _ggml.libggml


def fill_batch(
    batch: Any, tokens: Sequence[int], pos0: int = 0, outputs: Container[int] | None = None
) -> None:
    """Put `tokens` in a llama_batch as one sequence (id 0) at positions pos0, pos0+1, ...;
    `outputs` holds the positions whose logits are computed (None: every position). Each
    output costs a vocabulary-wide projection (262k columns on Gemma 3), so callers ask only
    for the rows they read."""
    for i, token in enumerate(tokens):
        pos = pos0 + i
        batch.token[i] = token
        batch.pos[i] = pos
        batch.n_seq_id[i] = 1
        batch.seq_id[i][0] = 0
        batch.logits[i] = outputs is None or pos in outputs
    batch.n_tokens = len(tokens)


def fill_tree(batch: Any, pack: Pack, outputs: Sequence[bool]) -> None:
    """Put a prefix tree of sequences in a llama_batch (packing.py): each node once, with the
    ids of every sequence through it; `outputs[i]`: whether node i's logits are computed."""
    for i, token in enumerate(pack.token):
        batch.token[i] = token
        batch.pos[i] = pack.pos[i]
        batch.n_seq_id[i] = len(pack.seqs[i])
        for k, seq in enumerate(pack.seqs[i]):
            batch.seq_id[i][k] = seq
        batch.logits[i] = outputs[i]
    batch.n_tokens = len(pack.token)


def vocab_only(path: Path) -> Any:
    """A llama_cpp.Llama holding only the file's vocabulary (no weights): for tokenizing."""
    lib = import_llama_cpp()
    return lib.Llama(model_path=str(path), vocab_only=True, verbose=False)


def file_tokenizer(path: Path) -> tuple[Callable[[str], list[int]], int | None]:
    """A tokenizer function (no BOS, no special tokens) with the file's own vocabulary, exactly
    what inference uses, and its BOS token (None when it has none)."""
    llm = vocab_only(path)
    bos = int(llm.token_bos())

    def tokenize(text: str) -> list[int]:
        return list(llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    return tokenize, (bos if bos >= 0 else None)


class BareModel:
    """A model and a context through llama.cpp's C API, on the CPU.

    mapped=True computes with the file's mapped pages (no repacked copies), so that a patched
    file is what it reads (probe_kld.py); cb_eval is ggml's eval callback (imatrix_collect.py);
    n_batch (default n_ctx) is the most tokens one decode takes.
    A failure raises `error` with the file's name."""

    def __init__(
        self,
        path: Path,
        n_ctx: int,
        threads: int,
        *,
        n_batch: int | None = None,
        cb_eval: Any = None,
        mapped: bool = True,
        error: type[EdgekitError] = RuntimeBackendError,
    ) -> None:
        # llama-cpp-python prints llama.cpp's log unless its logger is raised (Llama(verbose=
        # False) does the same); this loader bypasses Llama.
        logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)
        self.lib = lib = import_llama_cpp()
        mp = lib.llama_model_default_params()
        mp.n_gpu_layers = 0
        if mapped:
            mp.use_extra_bufts = False
        self.model = lib.llama_model_load_from_file(str(path).encode(), mp)
        if not self.model:
            raise error(f"llama.cpp could not load {path.name}")
        cp = lib.llama_context_default_params()
        cp.n_ctx = n_ctx
        cp.n_batch = cp.n_ubatch = n_batch or n_ctx
        cp.n_threads = cp.n_threads_batch = threads
        if cb_eval is not None:
            cp.cb_eval = cb_eval
        self.ctx = lib.llama_init_from_model(self.model, cp)
        if not self.ctx:
            lib.llama_model_free(self.model)
            raise error(f"llama.cpp could not create a context for {path.name}")
        self.error = error
        self.vocab = lib.llama_model_get_vocab(self.model)
        self.n_vocab = int(lib.llama_vocab_n_tokens(self.vocab))
        self.batch = lib.llama_batch_init(n_batch or n_ctx, 0, 1)

    def tokenize(self, text: str, add_bos: bool = False) -> list[int]:
        raw = text.encode("utf-8")
        size = len(raw) + 8
        for _ in range(2):  # a negative count is the size needed
            buf = (self.lib.llama_token * size)()
            n = self.lib.llama_tokenize(self.vocab, raw, len(raw), buf, size, add_bos, False)
            if n >= 0:
                return list(buf[:n])
            size = -n
        raise self.error("llama.cpp could not tokenize the text")

    @property
    def bos(self) -> int:
        return int(self.lib.llama_vocab_bos(self.vocab))

    @property
    def adds_bos(self) -> bool:
        return bool(self.lib.llama_vocab_get_add_bos(self.vocab))

    def decode(
        self, tokens: Sequence[int], pos0: int = 0, outputs: Container[int] | None = None
    ) -> int:
        """One batch on a cleared cache when pos0 is 0; llama_decode's return code."""
        if pos0 == 0:
            self.lib.llama_memory_clear(self.lib.llama_get_memory(self.ctx), True)
        fill_batch(self.batch, tokens, pos0, outputs)
        return int(self.lib.llama_decode(self.ctx, self.batch))

    def logits(self, n_rows: int) -> F32:
        """The last decode's output rows, as a view of llama.cpp's buffer (reused by the next
        decode: copy what is kept)."""
        ptr = self.lib.llama_get_logits(self.ctx)
        return np.ctypeslib.as_array(
            ctypes.cast(ptr, ctypes.POINTER(ctypes.c_float)), shape=(n_rows, self.n_vocab)
        )

    def close(self) -> None:
        self.lib.llama_batch_free(self.batch)
        self.lib.llama_free(self.ctx)
        self.lib.llama_model_free(self.model)

    def __enter__(self) -> BareModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
