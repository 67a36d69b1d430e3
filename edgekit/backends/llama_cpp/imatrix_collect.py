"""The importance matrix from activations edgekit records itself, inside llama.cpp's forward pass.

A context is created with an eval callback (llama_context_params.cb_eval): llama.cpp's scheduler
asks it about every node of the graph and hands over each matrix multiplication whose weight is
a block tensor; its activations (src[1]) are summed as x_j^2 per input column, with the number
of activation rows as the count. The text is cut into chunks the way llama-imatrix cuts it
(tokenized with BOS, chunks of n_ctx tokens, BOS in each chunk's first position, every position
an output so that the last block is not trimmed), so the result is llama-imatrix's, up to the
order of float additions. The same pass records each token's largest |x| per tensor: the spike
score of edgekit/quant/spikes.py, without a torch calibration.

The output head is never computed: the callback asks for the final norm ("result_norm", named so
in every llama.cpp model graph) and, once it is done, tells the scheduler to stop, which ggml
documents as cancelling the rest of the graph. With every position an output, the head is the
largest single product of the pass (a 262k vocabulary x 640 on Gemma 3 270M), and the imatrix
does not need its logits; llama-imatrix computes them for its perplexity printout.
"""

from __future__ import annotations

import ctypes
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np
import numpy.typing as npt

from edgekit.backends.llama_cpp.ggml_quant import ggml_lib
from edgekit.backends.llama_cpp.lib import BareModel, import_llama_cpp
from edgekit.errors import CalibrationError

F32 = npt.NDArray[np.float32]
_MIN_ROWS = 16  # llama-imatrix skips smaller batches too
_LAST_NODE = b"result_norm"  # the stream after the final norm, right before the output head


class _Tensor(ctypes.Structure):
    # ggml.h: struct ggml_tensor (GGML_MAX_DIMS 4, GGML_MAX_OP_PARAMS 64, GGML_MAX_SRC 10,
    # GGML_MAX_NAME 64); only read, never written.
    _fields_ = [
        ("type", ctypes.c_int),
        ("buffer", ctypes.c_void_p),
        ("ne", ctypes.c_int64 * 4),
        ("nb", ctypes.c_size_t * 4),
        ("op", ctypes.c_int),
        ("op_params", ctypes.c_int32 * 16),
        ("flags", ctypes.c_int32),
        ("src", ctypes.c_void_p * 10),
        ("view_src", ctypes.c_void_p),
        ("view_offs", ctypes.c_size_t),
        ("data", ctypes.c_void_p),
        ("name", ctypes.c_char * 64),
        ("extra", ctypes.c_void_p),
        ("padding", ctypes.c_char * 8),
    ]


def _op_code(name: bytes) -> int:
    ggml = ggml_lib()
    ggml.ggml_op_name.restype = ctypes.c_char_p
    ggml.ggml_op_name.argtypes = [ctypes.c_int]
    for i in range(256):
        if ggml.ggml_op_name(i) == name:
            return i
    raise CalibrationError(f"this ggml has no {name.decode()} op")


def weight_name(raw: bytes) -> str:
    """llama-imatrix's filter: a scheduler copy is named like 'CPU#blk.0.attn_q.weight#0'."""
    s = raw.decode(errors="replace")
    parts = s.split("#")
    return parts[1] if len(parts) > 1 else s


@dataclass
class Collected:
    sums: dict[str, npt.NDArray[np.float64]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    chunks: int = 0
    chunk_size: int = 0
    # per tensor, each token's largest |x| (the chunk's first position, BOS, left out)
    token_max: dict[str, list[F32]] = field(default_factory=dict)

    def spike_scores(self) -> dict[str, float]:
        """edgekit's spike score of each tensor's input (edgekit/quant/spikes.py): the largest
        per-token max |x| over the median token's."""
        out = {}
        for name, parts in self.token_max.items():
            m = np.concatenate(parts)
            med = float(np.median(m)) if len(m) else 0.0
            out[name] = float(m.max() / med) if med > 0 else 0.0
        return out


class _Collector:
    def __init__(self) -> None:
        self.mul_mat = _op_code(b"MUL_MAT")
        self.out = Collected()
        self.error: BaseException | None = None
        self.interrupted = False  # set by the SIGINT handler that collect() installs
        self.skip_first = False  # whether row 0 of each chunk is its BOS (left out of peaks)

    def __call__(self, t_ptr: int, ask: bool, _: Any) -> bool:
        """ggml's eval callback. Nothing may raise out of it: ctypes prints an exception that
        leaves a callback as "ignored" and returns 0, and the run went on (Ctrl-C was swallowed
        in 3 of 4 tries). So a failure or a Ctrl-C is a flag; the graph is stopped by answering
        yes to the next question and no (stop) to the node it shows, and collect() raises."""
        if self.interrupted or self.error is not None:
            return ask
        try:
            return self._take(t_ptr, ask)
        except BaseException as e:  # an exception must not unwind through C
            self.error = e
            return False

    def stop(self, signum: int, frame: FrameType | None) -> None:
        self.interrupted = True

    def _take(self, t_ptr: int, ask: bool) -> bool:
        t = _Tensor.from_address(t_ptr)
        if t.name == _LAST_NODE:
            return ask  # asked: yes, show it; shown: stop here, before the head
        if t.op != self.mul_mat:
            return False
        w = _Tensor.from_address(t.src[0])
        x = _Tensor.from_address(t.src[1])
        name = weight_name(w.name)
        if ask:
            return x.ne[1] >= _MIN_ROWS and x.type == 0 and name.startswith("blk.")  # 0: F32
        if w.ne[2] * w.ne[3] != 1:
            raise CalibrationError(f"{name}: 3-D weights (experts) are not supported here")
        n_rows = x.ne[1] * x.ne[2] * x.ne[3]
        rows = np.ctypeslib.as_array(
            ctypes.cast(x.data, ctypes.POINTER(ctypes.c_float)), shape=(int(n_rows), int(x.ne[0]))
        )
        if x.nb[1] != x.ne[0] * 4:
            raise CalibrationError(f"{name}: activations are not contiguous")
        sq = np.einsum("ij,ij->j", rows, rows, dtype=np.float64)
        self.out.sums[name] = self.out.sums.get(name, 0.0) + sq
        self.out.counts[name] = self.out.counts.get(name, 0) + int(n_rows)
        peaks = np.abs(rows[1:] if self.skip_first else rows).max(axis=1)
        self.out.token_max.setdefault(name, []).append(peaks.astype(np.float32))
        return True


@contextmanager
def _interrupts_to(collector: _Collector) -> Iterator[None]:
    """While llama.cpp computes, Ctrl-C only sets the collector's flag (see _Collector)."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signals are delivered to the main thread only
        return
    previous = signal.signal(signal.SIGINT, collector.stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _decode_chunk(m: BareModel, collector: _Collector, chunk: list[int]) -> None:
    """One chunk on a cleared cache, every position an output (so the last block is not
    trimmed); a Ctrl-C or a failure inside the callback is raised here, after llama.cpp."""
    if m.adds_bos:
        chunk[0] = m.bos
    rc = m.decode(chunk)
    if collector.interrupted:
        raise KeyboardInterrupt
    if rc != 0 or collector.error is not None:
        raise collector.error or CalibrationError("llama.cpp failed to decode a chunk")


def collect(
    model: Path, text: str, n_ctx: int = 256, chunks: int = 64, threads: int = 2
) -> Collected:
    """Sum of squared activations per input column of every block matrix, over `text`."""
    lib = import_llama_cpp()
    collector = _Collector()
    callback = lib.ggml_backend_sched_eval_callback(collector)
    # Repacked weights are fine here (nothing patches the file): mapped=False keeps them.
    with BareModel(
        model, n_ctx, threads, cb_eval=callback, mapped=False, error=CalibrationError
    ) as m:
        tokens = m.tokenize(text, add_bos=True)
        n_chunk = min(chunks, len(tokens) // n_ctx)
        if n_chunk < 1:
            raise CalibrationError(
                f"the calibration text has {len(tokens)} tokens, fewer than one chunk of {n_ctx}",
                hint="Give a longer --calib-file.",
            )
        collector.skip_first = m.adds_bos  # one chunk per decode: row 0 is the chunk's BOS
        with _interrupts_to(collector):
            for c in range(n_chunk):
                _decode_chunk(m, collector, tokens[c * n_ctx : (c + 1) * n_ctx])
            if collector.interrupted:  # Ctrl-C after the last decode
                raise KeyboardInterrupt
    out = collector.out
    out.chunks, out.chunk_size = n_chunk, n_ctx
    return out
