"""Per-layer hidden states from llama.cpp itself, the way its cvector-generator reads them.

llama.cpp names each block's output `l_out-N` in the compute graph, after the control vector for
layer N has been added; the eval callback (`cb_eval` in the context params) lets us copy those
tensors out as the graph runs. That keeps the steering path free of torch, so a Raspberry Pi can
derive its own vectors. The callback needs a context of its own (it is fixed at creation), so
this opens a small second context on the already-loaded model weights. Short sequences (the
contrast pairs) go through it several to a decode, as a prefix tree (packing.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from edgekit.backends.base import FloatArray
from edgekit.backends.llama_cpp.lib import fill_batch, fill_tree, ggml_base
from edgekit.backends.llama_cpp.packing import Pack, PackLimits, packs
from edgekit.backends.llama_cpp.quiet import quietly
from edgekit.errors import RuntimeBackendError

# Graph names (llama.cpp's `cb(tensor, name, il)`) of the points a reader can capture: each
# block's output, the normalized inputs its attention and feed-forward matrices read, and what
# attention moved (the heads' weighted values, which attn_output reads).
POINTS = {
    "l_out": b"l_out-",
    "attn_norm": b"attn_norm-",
    "ffn_norm": b"ffn_norm-",
    "kqv_out": b"kqv_out-",
}


SEQS = 64

States = dict[str, dict[int, FloatArray]]


class HiddenStateReader:
    """Runs token sequences through the model and returns {point: {layer: (n_tokens, n_embd)}}."""

    def __init__(self, llm: Any, n_ctx: int = 512, points: Sequence[str] = ("l_out",)) -> None:
        import llama_cpp

        self._prefixes = {POINTS[p]: p for p in points}
        self.lib = llama_cpp
        self.ggml = ggml_base()
        self.n_layer = int(llama_cpp.llama_model_n_layer(llm.model))
        self.n_embd = int(llama_cpp.llama_model_n_embd(llm.model))
        self._captured: dict[str, dict[int, FloatArray]] = {}
        self._n_tokens = 0
        # Keep the ctypes callback object alive as long as the context can call it.
        self._callback = llama_cpp.ggml_backend_sched_eval_callback(self._on_tensor)
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = n_ctx
        params.n_batch = n_ctx
        params.n_ubatch = n_ctx
        params.n_threads = llm.context_params.n_threads
        params.n_threads_batch = llm.context_params.n_threads_batch
        params.cb_eval = self._callback
        params.cb_eval_user_data = None
        params.no_perf = True
        params.n_seq_max = SEQS
        params.kv_unified = True  # sequences that share a prefix share its cells
        self.ctx = quietly(lambda: llama_cpp.llama_init_from_model(llm.model, params))
        if not self.ctx:
            raise RuntimeBackendError("llama.cpp could not open a context to read hidden states")
        self._batch = llama_cpp.llama_batch_init(n_ctx, 0, SEQS)
        self.n_ctx = n_ctx
        # Rows 0: the one output row a decode needs is set by hand (_decode_pack).
        self.limits = PackLimits(tokens=n_ctx, rows=0, seqs=SEQS)

    def close(self) -> None:
        if self.ctx:
            self.lib.llama_batch_free(self._batch)
            self.lib.llama_free(self.ctx)
            self.ctx = None

    def _on_tensor(self, tensor: int, ask: bool, _user: int) -> bool:
        name = self.ggml.ggml_get_name(tensor) or b""
        prefix, _, layer = name.rpartition(b"-")
        point = self._prefixes.get(prefix + b"-")
        if point is None or not layer.isdigit():
            return not ask  # ask: "do you want this one?"; otherwise: "keep going?"
        if ask:
            return True
        n = int(self.ggml.ggml_nelements(tensor))
        rows = int(self.ggml.ggml_nrows(tensor))
        # Only full F32 rows: the last block may be cut to the output rows.
        if rows != self._n_tokens or int(self.ggml.ggml_nbytes(tensor)) != 4 * n:
            return True
        out = np.empty((rows, n // rows), dtype=np.float32)
        self.ggml.ggml_backend_tensor_get(tensor, out.ctypes.data, 0, 4 * n)
        self._captured.setdefault(point, {})[int(layer)] = out
        return True

    def read(self, tokens: Sequence[int]) -> States:
        """{point: {block: (n_tokens, n_embd)}} for one sequence (a fresh cache each time)."""
        if not 0 < len(tokens) <= self.n_ctx:
            raise ValueError(f"{len(tokens)} tokens do not fit the {self.n_ctx}-token context")
        self.lib.llama_memory_clear(self.lib.llama_get_memory(self.ctx), True)
        # One output row: the vocab projection of every row would cost more than the model,
        # and only the last block (which cannot be read whole then) needs them.
        fill_batch(self._batch, tokens, 0, outputs=(len(tokens) - 1,))
        self._captured = {}
        self._n_tokens = len(tokens)
        rc = self.lib.llama_decode(self.ctx, self._batch)
        if rc != 0:
            raise RuntimeBackendError(f"llama_decode failed while reading hidden states ({rc})")
        return {p: dict(v) for p, v in self._captured.items()}

    def read_many(self, seqs: Sequence[Sequence[int]]) -> list[States]:
        """read() of each sequence; those that fit share decodes, as a prefix tree."""
        out: list[States | None] = [None] * len(seqs)
        for tokens in seqs:
            if not 0 < len(tokens) <= self.n_ctx:
                raise ValueError(f"{len(tokens)} tokens do not fit the {self.n_ctx}-token context")
        for pack in packs(self.limits, ((i, t, len(t) - 1) for i, t in enumerate(seqs))):
            self._decode_pack(pack, out)
        return [x if x is not None else {} for x in out]

    def _decode_pack(self, pack: Pack, out: list[States | None]) -> None:
        self.lib.llama_memory_clear(self.lib.llama_get_memory(self.ctx), True)
        last = len(pack.token) - 1
        fill_tree(self._batch, pack, [i == last for i in range(last + 1)])  # one row (see read)
        self._captured = {}
        self._n_tokens = len(pack.token)
        rc = self.lib.llama_decode(self.ctx, self._batch)
        if rc != 0:
            raise RuntimeBackendError(f"llama_decode failed while reading hidden states ({rc})")
        for seq, index in enumerate(pack.members):
            rows = np.array(pack.paths[seq], dtype=np.int64)
            out[index] = {
                p: {block: x[rows] for block, x in blocks.items()}
                for p, blocks in self._captured.items()
            }
