"""The sensitivity probes' reference, kept in files, so that each probe is one light session.

The all-8-bit background runs once over the calibration windows. Its distributions go to a
file as float32 probabilities (Qwen2's 151,936-token vocabulary makes 0.6 GB for 4 windows; in
memory they would cost more than the session they replace), with what every probe compares
against per position computed once: sum p log p, the row's mass, the argmax. The tensors that
cross into each probed block go to a second file (`cut`), so a probe whose first changed block
is N runs only its suffix graph. Per position a probe then needs its logits' log-sum-exp and
one dot product with the stored probabilities: KL(p || q) = sum p log p - (sum p x - lse(x)
sum p), which equals the evaluator's `compare` on log-softmaxed logits.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from edgekit.backends.onnx.eval import PREFILL_CHUNK
from edgekit.backends.onnx.model import load_onnx_dir
from edgekit.backends.onnx.runtime import (
    cache_slots,
    choose_providers,
    chunk_bounds,
    import_onnxruntime,
    open_session,
    step_feeds,
)
from edgekit.backends.onnx.tokenizer import OnnxTokenizer
from edgekit.devices.profiles import DeviceProfile, load_profile
from edgekit.errors import EvalError
from edgekit.evaluate import RunningSums, log_softmax, windows

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
Feeds = Callable[[int], dict[str, Any]]


@dataclass(frozen=True)
class _Rows:
    """The reference's side of the comparison for one call's positions."""

    neg_entropy: F64  # sum p log p
    mass: F64  # sum p (1 up to float32 rounding, which matters at probe-sized KLDs)
    argmax: npt.NDArray[np.int64]
    targets: npt.NDArray[np.int64]


class _Graph:
    """A session over one graph file, run a window at a time in prompt chunks (the first
    position alone, as OnnxRuntime reads it), its KV cache carried between calls."""

    def __init__(self, path: Path, profile: DeviceProfile) -> None:
        ort = import_onnxruntime()
        providers, _ = choose_providers(profile.onnx_providers, ort.get_available_providers())
        self.session = open_session(ort, path, profile, providers)
        self.args = self.session.get_inputs()
        self.inputs = {a.name for a in self.args}
        self.slots = cache_slots(self.args, [o.name for o in self.session.get_outputs()])

    def run(self, tokens: Sequence[int], extra: Sequence[str], feeds: Feeds) -> Iterator[list[Any]]:
        """Per call: [logits (n, vocab), *extra outputs]."""
        cache = {s.input: np.zeros(s.empty_shape, dtype=s.dtype) for s in self.slots}
        names = ["logits", *extra, *(s.output for s in self.slots)]
        for i, (start, end) in enumerate(
            itertools.pairwise(chunk_bounds(len(tokens), PREFILL_CHUNK))
        ):
            feed = {**cache, **step_feeds(self.args, tokens[start:end], start), **feeds(i)}
            outs = self.session.run(names, feed)
            k = 1 + len(extra)
            cache = {s.input: o for s, o in zip(self.slots, outs[k:], strict=True)}
            yield [np.asarray(outs[0][0], dtype=np.float32), *outs[1:k]]


class SavedReference:
    """The background's distributions and crossing tensors over the windows of `text`;
    `kld(graph)` scores a probe (a whole graph, or a suffix fed the crossing tensors)."""

    def __init__(
        self,
        reference: Path,
        text: str,
        file: Path,
        n_ctx: int = 256,
        max_windows: int = 8,
        crossing: Sequence[str] = (),
    ) -> None:
        self.profile, self.file = load_profile("cpu"), file
        self.states_file = file.with_suffix(".states")
        model = load_onnx_dir(reference)
        tok = OnnxTokenizer(model)
        body = tok.tok.encode(text, add_special_tokens=False).ids
        self.windows = windows(body, n_ctx, tok.bos_id, max_windows)
        if not self.windows:
            raise EvalError("the text is too short for one window", hint="Use a longer text.")
        self.rows: list[list[_Rows]] = []
        self.crossing = frozenset(crossing)
        self.states: dict[tuple[int, int, str], tuple[int, tuple[int, ...]]] = {}
        graph = _Graph(model.onnx_file, self.profile)
        with file.open("wb") as probs_out, self.states_file.open("wb") as states_out:
            for w, win in enumerate(self.windows):
                targets, rows = np.asarray(win[1:], dtype=np.int64), []
                for c, (logits, *cross) in enumerate(graph.run(win[:-1], crossing, _none)):
                    rows.append(_reference_rows(logits, targets[: len(logits)], probs_out))
                    targets = targets[len(logits) :]
                    for name, t in zip(crossing, cross, strict=True):
                        self.states[w, c, name] = (states_out.tell(), t.shape)
                        np.ascontiguousarray(t, dtype=np.float32).tofile(states_out)
                self.rows.append(rows)
        self.vocab_size = int(graph.session.get_outputs()[0].shape[-1])

    def kld(self, candidate: Path) -> float:
        """Mean KL divergence of `candidate` from the reference, per position."""
        graph, acc = _Graph(load_onnx_dir(candidate).onnx_file, self.profile), RunningSums()
        fed = [n for n in graph.inputs if n in self.crossing]
        with self.file.open("rb") as probs_in, self.states_file.open("rb") as states_in:
            for w, win in enumerate(self.windows):

                def feeds(c: int, w: int = w) -> dict[str, Any]:
                    return {n: self._state(states_in, w, c, n) for n in fed}

                for c, (logits,) in enumerate(graph.run(win[:-1], (), feeds)):
                    if logits.shape[-1] != self.vocab_size:
                        raise EvalError("the models have different vocabularies")
                    probs = np.fromfile(probs_in, dtype=np.float32, count=logits.size)
                    _fold(self.rows[w][c], probs.reshape(logits.shape), logits, acc)
        return acc.kld / max(acc.n, 1)

    def _state(self, f: Any, w: int, c: int, name: str) -> F32:
        offset, shape = self.states[w, c, name]
        f.seek(offset)
        return np.fromfile(f, dtype=np.float32, count=int(np.prod(shape))).reshape(shape)

    def close(self) -> None:
        self.file.unlink(missing_ok=True)
        self.states_file.unlink(missing_ok=True)


def _none(_: int) -> dict[str, Any]:
    return {}


def _reference_rows(logits: F32, targets: npt.NDArray[np.int64], out: Any) -> _Rows:
    logp = log_softmax(logits)
    probs = np.exp(logp)
    probs.tofile(out)
    neg_entropy = np.einsum("ij,ij->i", probs, logp, dtype=np.float64)
    return _Rows(neg_entropy, probs.sum(-1, dtype=np.float64), logp.argmax(-1), targets)


def _fold(ref: _Rows, probs: F32, logits: F32, acc: RunningSums) -> None:
    """One call's positions into the running sums, from raw logits: no log-softmax array."""
    top = logits.max(-1, keepdims=True)
    lse = top[:, 0].astype(np.float64) + np.log(np.exp(logits - top).sum(-1, dtype=np.float64))
    cross = np.einsum("ij,ij->i", probs, logits, dtype=np.float64) - lse * ref.mass
    acc.kld += float((ref.neg_entropy - cross).sum())
    acc.nll += float((lse - logits[np.arange(len(logits)), ref.targets]).sum())
    acc.agree += int((logits.argmax(-1) == ref.argmax).sum())
    acc.n += len(logits)
