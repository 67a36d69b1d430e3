"""The onnxruntime back end: a KV-cache generation loop over an exported decoder graph.

Names, dtypes and shapes of the inputs and the cache come from `session.get_inputs()`, never from
the model family: optimum's own wrapper guesses the past-key-values shape from the config and gets
grouped-KV models (gemma2, phi3) wrong. Every `past_key_values.N.key|value` input is fed from the
matching `present.N.key|value` output of the previous step. Only onnxruntime, numpy and
`tokenizers` are imported: the run path never needs torch.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from edgekit.backends.base import (
    GenerationResult,
    GenerationStats,
    SamplingParams,
    TokenCallback,
    decode_rate,
)
from edgekit.backends.onnx.model import OnnxModelDir, load_onnx_dir
from edgekit.backends.onnx.sampling import make_rng, sample_next
from edgekit.backends.onnx.tokenizer import OnnxTokenizer
from edgekit.devices.profiles import DeviceProfile
from edgekit.errors import (
    EmptyPromptError,
    ModelFileError,
    PromptTooLongError,
    RuntimeBackendError,
    UnsupportedModelError,
)
from edgekit.metrics import peak_rss_bytes

F32 = npt.NDArray[np.float32]
_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(bool)": np.bool_,
}
# Logit floats one forward pass may return: bounds prefill memory with big vocabularies
# (Gemma 3's 262k tokens x 64 positions = 64 MiB).
LOGITS_BUDGET = 1 << 24


def import_onnxruntime() -> Any:
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise RuntimeBackendError(
            f"onnxruntime is not installed: {e}",
            hint="Install the ONNX runtime extra: pip install 'edgekit[convert]' "
            "(or just onnxruntime and tokenizers).",
        ) from None
    return ort


def choose_providers(
    wanted: Sequence[str], available: Sequence[str]
) -> tuple[list[str], list[str]]:
    """(providers to use in the profile's order, the profile's providers this build lacks)."""
    use = [p for p in wanted if p in available]
    missing = [p for p in wanted if p not in available]
    return (use or ["CPUExecutionProvider"]), missing


@dataclass(frozen=True)
class CacheSlot:
    input: str  # past_key_values.0.key
    output: str  # present.0.key
    empty_shape: tuple[int, ...]  # batch 1, past length 0
    dtype: Any


def cache_slots(inputs: Sequence[Any], outputs: Sequence[str]) -> list[CacheSlot]:
    """The KV cache layout, read from the graph's own input declarations."""
    slots = []
    for arg in inputs:
        if not arg.name.startswith("past_key_values"):
            continue
        out = arg.name.replace("past_key_values", "present", 1)
        symbolic = [i for i, d in enumerate(arg.shape) if not isinstance(d, int)]
        if out not in outputs or arg.type not in _DTYPES or symbolic[1:] != [symbolic[-1]]:
            raise UnsupportedModelError(
                f"cannot drive the cache input {arg.name} {arg.shape} ({arg.type})",
                hint="Export with optimum's text-generation-with-past task.",
            )
        # Batch (axis 0) is 1 and the one other free axis is the past length, empty at first.
        shape = tuple(
            1 if i == 0 else 0 if i in symbolic else int(d) for i, d in enumerate(arg.shape)
        )
        slots.append(CacheSlot(arg.name, out, shape, _DTYPES[arg.type]))
    return slots


def chunk_bounds(n: int, chunk: int) -> list[int]:
    """Where a prompt of n positions is split into graph calls: the first alone (see
    OnnxRuntime._blocks), then `chunk` at a time."""
    return [0, *range(1, n, chunk), n] if n else []


def step_feeds(inputs: Iterable[Any], ids: Sequence[int], past: int) -> dict[str, Any]:
    """A causal LM call's inputs besides the cache, for `ids` at positions past..: those of
    input_ids, attention_mask, position_ids and use_cache_branch the graph declares (a graph
    cut after its embedding has no input_ids)."""
    declared = {a.name: a.type for a in inputs}
    n, feeds = len(ids), dict[str, Any]()
    if "input_ids" in declared:
        feeds["input_ids"] = np.asarray([ids], dtype=_DTYPES[declared["input_ids"]])
    if "attention_mask" in declared:
        feeds["attention_mask"] = np.ones((1, past + n), dtype=np.int64)
    if "position_ids" in declared:
        feeds["position_ids"] = np.arange(past, past + n, dtype=np.int64)[None, :]
    if "use_cache_branch" in declared:  # merged decoders
        feeds["use_cache_branch"] = np.asarray([past > 0])
    return feeds


def open_session(ort: Any, path: Path, profile: DeviceProfile, providers: list[str]) -> Any:
    """An onnxruntime session on `path` with the profile's threads, idle threads asleep."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = profile.threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    # Idle intra-op threads sleep instead of spinning. Measured on the shared 2-core machine
    # (SmolLM2-135M, 4 interleaved rounds): decode 1.47x faster than with spinning, and with it
    # edgekit's loop went from 0.69x of onnxruntime_genai's Generator on the same folder to par.
    # A spinning thread burns a core that the next op (and anything else on an edge device) needs.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=providers)
    except Exception as e:  # onnxruntime's errors derive from Exception only (InvalidProtobuf...)
        raise ModelFileError(
            f"onnxruntime cannot load {path}: {type(e).__name__}: {str(e)[:300]}",
            hint="The file is corrupt or not an ONNX graph; re-run `edgekit convert --to onnx`.",
        ) from None


def load_error(path: str | Path) -> str | None:
    """Why onnxruntime refuses an ONNX folder, or None. (onnxruntime-genai 0.13.2's builder
    writes some invalid graphs: `k_quant` with shared embeddings on SmolLM2 names an
    initializer it never wrote.)"""
    from edgekit.devices.profiles import load_profile
    from edgekit.errors import EdgekitError

    try:
        OnnxRuntime(path, load_profile("cpu"), 64).close()
    except EdgekitError as e:
        return e.message
    return None


class OnnxRuntime:
    """Mirrors LlamaCppRuntime: prompt_tokens, format_chat, generate, close (+ logits for eval)."""

    def __init__(
        self, model: str | Path | OnnxModelDir, profile: DeviceProfile, n_ctx: int
    ) -> None:
        ort = import_onnxruntime()
        self.model = model if isinstance(model, OnnxModelDir) else load_onnx_dir(model)
        self.profile = profile
        self.n_ctx = n_ctx
        self.tokenizer = OnnxTokenizer(self.model)
        providers, missing = choose_providers(profile.onnx_providers, ort.get_available_providers())
        self.notes = (
            [f"this onnxruntime build lacks {', '.join(missing)}; running on {providers[0]}"]
            if missing
            else []
        )
        self.session = open_session(ort, self.model.onnx_file, profile, providers)
        self.input_names = {i.name: i for i in self.session.get_inputs()}
        self.output_names = [o.name for o in self.session.get_outputs()]
        if "input_ids" not in self.input_names or "logits" not in self.output_names:
            raise UnsupportedModelError(
                f"{self.model.onnx_file.name} is not a causal LM graph "
                f"(inputs {sorted(self.input_names)})",
                hint="Export with optimum's text-generation-with-past task.",
            )
        self.slots = cache_slots(list(self.input_names.values()), self.output_names)
        self.vocab_size = int(self.session.get_outputs()[0].shape[-1])
        self.last_tokens: list[int] = []  # ids generated by the last generate() call

    def close(self) -> None:
        self.session = None

    # --- the decoder graph -------------------------------------------------------------------

    def empty_cache(self) -> dict[str, Any]:
        return {s.input: np.zeros(s.empty_shape, dtype=s.dtype) for s in self.slots}

    def forward(
        self, ids: Sequence[int], cache: dict[str, Any], past: int
    ) -> tuple[F32, dict[str, Any]]:
        """Logits for `ids` at positions past.., and the cache extended by them."""
        feeds = {**cache, **step_feeds(self.input_names.values(), ids, past)}
        names = ["logits", *(s.output for s in self.slots)]
        outs = self.session.run(names, feeds)
        new_cache = {s.input: o for s, o in zip(self.slots, outs[1:], strict=True)}
        return np.asarray(outs[0][0], dtype=np.float32), new_cache

    def chunk_size(self) -> int:
        return max(1, LOGITS_BUDGET // max(self.vocab_size, 1))

    def _blocks(self, tokens: Sequence[int], chunk: int) -> Iterator[tuple[F32, dict[str, Any]]]:
        """(logits, cache so far) per block; the first position always goes through alone.

        Its residual stream carries a massive activation (~1e5 on Gemma 3), and int8 graphs
        quantize each MatMul input with one scale per call: sharing a call with it flattens
        every other token's activations. One extra call is cheap and leaves fp32 unchanged.
        """
        cache = self.empty_cache()
        for start, end in itertools.pairwise(chunk_bounds(len(tokens), chunk)):
            logits, cache = self.forward(tokens[start:end], cache, start)
            yield logits, cache

    def iter_logits(self, tokens: Sequence[int], chunk: int | None = None) -> Iterator[F32]:
        """Per-position logits of `tokens` (row i predicts token i+1), a block at a time."""
        for logits, _ in self._blocks(tokens, chunk or self.chunk_size()):
            yield logits

    def logits(self, tokens: Sequence[int]) -> F32:
        """All positions at once: (len(tokens), vocab). For eval; mind the memory on big vocabs."""
        return np.concatenate(list(self.iter_logits(tokens)), axis=0)

    # --- the LlamaCppRuntime interface -------------------------------------------------------

    def tokenize(self, text: str) -> list[int]:
        return self.tokenizer.encode(text)

    def prompt_tokens(self, text: str) -> list[int]:
        if not text.strip():
            raise EmptyPromptError("the prompt is empty", hint="Pass some text with -p.")
        tokens = self.tokenize(text)
        if len(tokens) >= self.n_ctx:
            raise PromptTooLongError(
                f"the prompt is {len(tokens)} tokens but the context holds {self.n_ctx}",
                hint=f"Shorten the prompt or raise the context (--ctx {2 * len(tokens)}).",
            )
        return tokens

    def format_chat(self, messages: Sequence[dict[str, str]]) -> str:
        return self.tokenizer.format_chat(messages)

    def _prefill(self, tokens: Sequence[int]) -> tuple[F32, dict[str, Any]]:
        *_, (logits, cache) = self._blocks(tokens, self.chunk_size())
        return logits[-1], cache

    def generate(
        self, tokens: list[int], params: SamplingParams, on_token: TokenCallback | None = None
    ) -> GenerationResult:
        if not tokens:
            raise EmptyPromptError("no prompt tokens to generate from")
        max_tokens = min(params.max_tokens, self.n_ctx - len(tokens))
        rng, stream = make_rng(params.seed), self.tokenizer.streamer()
        history, pieces, generated = list(tokens), list[str](), list[int]()
        start = time.perf_counter()
        logits, cache = self._prefill(tokens)
        prefill_s = time.perf_counter() - start
        n_sampled, first_at, last_at, stop = 0, None, 0.0, "length"
        while len(generated) < max_tokens:
            token = sample_next(logits, params, rng, history)
            last_at = time.perf_counter()
            first_at = first_at or last_at
            n_sampled += 1
            if token in self.tokenizer.eos_ids:
                stop = "eos"
                break
            generated.append(token)
            history.append(token)
            piece = stream(token)
            if piece:
                pieces.append(piece)
                if on_token:
                    on_token(piece)
            if len(generated) >= max_tokens:
                break
            step_logits, cache = self.forward([token], cache, len(history) - 1)
            logits = step_logits[-1]
        self.last_tokens = generated
        stats = GenerationStats(
            prompt_tokens=len(tokens),
            generated_tokens=len(generated),
            prompt_tokens_per_s=len(tokens) / prefill_s if prefill_s > 0 else 0.0,
            decode_tokens_per_s=decode_rate(n_sampled, first_at, last_at),
            time_to_first_token_s=(first_at - start) if first_at else 0.0,
            total_s=time.perf_counter() - start,
            peak_rss_bytes=peak_rss_bytes(),
            stop_reason=stop,
        )
        return GenerationResult("".join(pieces), stats)
