"""The llama.cpp back end, through llama-cpp-python. Imported only by commands that run a model."""

from __future__ import annotations

import codecs
import ctypes
import time
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np
from gguf import Keys

from edgekit.backends.base import (
    FloatArray,
    GenerationResult,
    GenerationStats,
    SamplingParams,
    TokenCallback,
    decode_rate,
)
from edgekit.backends.llama_cpp.adapters import ContextAdapters
from edgekit.backends.llama_cpp.lib import import_llama_cpp
from edgekit.backends.llama_cpp.sampler import NativeSampler, PieceDecoder
from edgekit.backends.llama_cpp.threads import ThreadGovernor
from edgekit.devices.profiles import DeviceProfile
from edgekit.errors import (
    ContextCreationError,
    EmptyPromptError,
    ModelFileError,
    ModelLoadError,
    ModelSanityError,
    PromptTooLongError,
    RuntimeBackendError,
    UnsupportedModelError,
)
from edgekit.gguf.reader import ModelInfo
from edgekit.metrics import peak_rss_bytes

if TYPE_CHECKING:
    from edgekit.backends.base import HiddenStateSource, LogitSource

ChatMessage = dict[str, str]


def fallback_chat_template(architecture: str) -> str:
    """A llama.cpp built-in template name for models whose GGUF carries no chat template."""
    return "gemma" if architecture.startswith("gemma") else "chatml"


def load_failure(info: ModelInfo, error: ValueError) -> ModelFileError | ContextCreationError:
    """Why llama.cpp refused a file whose header edgekit already read and checked."""
    import gguf

    # llama-cpp-python raises "Failed to create llama_context" once the weights have loaded: the
    # file is fine, and the context, cache type or batch asked for is what llama.cpp refused.
    if "llama_context" in str(error):
        return ContextCreationError(
            f"{info.path.name} loaded, but llama.cpp could not create its context",
            hint="A setting is what it refused, not the file: lower --ctx, or use "
            'kv_cache_type = "f16" and a smaller batch in the device profile; run with '
            "--verbose to see llama.cpp's reason.",
        )

    if info.architecture not in gguf.MODEL_ARCH_NAMES.values():
        return UnsupportedModelError(
            f"llama.cpp could not load {info.path.name}: architecture {info.architecture!r}",
            hint="The architecture may be newer than this llama.cpp build; "
            "run with --verbose to see llama.cpp's log.",
        )
    return ModelLoadError(
        f"llama.cpp could not load {info.path.name} ({info.architecture}): {error}",
        hint="Its header reads cleanly, so the damage is past it (a tensor's shape or data, or "
        "a value llama.cpp checks): run with --verbose to see llama.cpp's reason, then download "
        "or convert the file again.",
    )


def check_loaded_model(lib: ModuleType, llm: Any, info: ModelInfo) -> None:
    """Refuse a model that loads but cannot work: special tokens llama.cpp had to replace (an
    out-of-range BOS/EOS in the file) or non-finite logits on the first token (a NaN RoPE base or
    NaN weights), which would otherwise run with exit 0 and print nothing or garbage."""
    vocab = llm._model.vocab
    n_vocab = lib.llama_vocab_n_tokens(vocab)
    bos, eos = lib.llama_vocab_bos(vocab), lib.llama_vocab_eos(vocab)
    for name, token, key in (
        ("BOS", bos, Keys.Tokenizer.BOS_ID),
        ("EOS", eos, Keys.Tokenizer.EOS_ID),
    ):
        stated = llm.metadata.get(key)
        if not -1 <= token < n_vocab or (stated is not None and stated != str(token)):
            raise ModelSanityError(
                f"{info.path.name}: the {name} token ({key} = {stated}) is not in its "
                f"vocabulary of {n_vocab} tokens",
                hint="The file's tokenizer metadata is damaged: download or convert it again.",
            )
    first = bos if bos >= 0 else ([*llm.tokenize(b"the", add_bos=False), 0])[0]
    try:
        llm.eval([first])
        pointer = llm._ctx.get_logits()  # NULL for models without an output head (embeddings)
        logits = np.ctypeslib.as_array(pointer, shape=(n_vocab,)) if pointer else np.zeros(1)
        n_bad = int(np.count_nonzero(~np.isfinite(logits)))
    finally:
        # Leave the context as loaded: generation starts from an empty KV cache.
        lib.llama_memory_clear(lib.llama_get_memory(llm.ctx), True)
        llm.reset()
    if n_bad:
        raise ModelSanityError(
            f"{info.path.name} loads, but its first forward pass gives {n_bad:,} non-finite "
            f"logits (NaN or inf) of {n_vocab:,}",
            hint="A weight or a hyperparameter (e.g. rope.freq_base) is damaged: download or "
            "convert the file again.",
        )


class LlamaCppRuntime:
    def __init__(
        self,
        info: ModelInfo,
        profile: DeviceProfile,
        n_ctx: int,
        verbose: bool = False,
        threads: int | None = None,
        n_gpu_layers: int | None = None,
        tensor_split: list[float] | None = None,
    ) -> None:
        """threads: a fixed count (-t); None measures the load before each turn (see threads.py).
        n_gpu_layers / tensor_split override the profile's offload (RPC workers: rpc/pool.py
        decides them, so the split shown before loading is the one llama.cpp makes)."""
        self.lib = import_llama_cpp()
        self.info = info
        self.n_ctx = n_ctx
        self.governor = ThreadGovernor(profile.threads, fixed=threads)
        self.governor.start()
        try:
            self.llm: Any = self.lib.Llama(
                model_path=str(info.path),
                n_ctx=n_ctx,
                n_threads=self.governor.current,
                n_threads_batch=self.governor.current,
                n_gpu_layers=profile.gpu_layers if n_gpu_layers is None else n_gpu_layers,
                tensor_split=tensor_split,
                n_batch=profile.batch,
                n_ubatch=profile.ubatch,
                use_mmap=profile.mmap,
                use_mlock=profile.mlock,
                flash_attn=profile.flash_attn,
                swa_full=profile.swa_full,
                type_k=int(profile.kv_cache_type),
                type_v=int(profile.kv_cache_type),
                verbose=verbose,
            )
        except ValueError as e:
            raise load_failure(info, e) from None
        self._vocab = self.llm._model.vocab
        try:
            check_loaded_model(self.lib, self.llm, info)
        except BaseException:
            self.llm.close()
            raise
        self._n_batch = int(self.llm.n_batch)
        self._piece = PieceDecoder(self.lib, self._vocab)
        self._one = (self.lib.llama_token * 1)()
        self.adapters = ContextAdapters(self.llm)
        self.notes: list[str] = []
        if (
            n_gpu_layers is None
            and profile.gpu_layers != 0
            and not self.lib.llama_supports_gpu_offload()
        ):
            self.notes.append(
                f"this llama.cpp build has no GPU back end, so {profile.name}'s GPU layers run on "
                f"the CPU; rebuild with CMAKE_ARGS='{profile.cmake_args}'"
            )

    def close(self) -> None:
        self.llm.close()

    # Capability.SCORE and Capability.ADAPTERS: the work is in scoring.py, hidden.py, adapters.py.
    def logits(self) -> LogitSource:
        from edgekit.backends.llama_cpp.scoring import LlamaLogits

        return LlamaLogits(self.llm, self.adapters)

    def hidden_states(
        self, n_ctx: int = 256, points: Sequence[str] = ("l_out",)
    ) -> HiddenStateSource:
        from edgekit.backends.llama_cpp.hidden import HiddenStateReader

        return HiddenStateReader(self.llm, n_ctx, points)

    def set_lora(self, path: Path | None, scale: float = 1.0) -> None:
        self.adapters.set_lora(path, scale)

    def set_control_vector(self, matrix: FloatArray | None) -> None:
        self.adapters.set_control(matrix)

    def tokenize(self, text: str, add_bos: bool = True) -> list[int]:
        return list(self.llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=True))

    def prompt_tokens(self, text: str) -> list[int]:
        if not text.strip():
            raise EmptyPromptError("the prompt is empty", hint="Pass some text with -p.")
        tokens = self.tokenize(text)
        if len(tokens) >= self.n_ctx:
            raise PromptTooLongError.for_prompt(len(tokens), self.n_ctx, self.info.context_length)
        return tokens

    def format_chat(self, messages: Sequence[ChatMessage]) -> str:
        """Render a conversation with llama.cpp's own template engine."""
        lib = self.lib
        template = lib.llama_model_chat_template(self.llm.model, None)
        if template is None:
            template = fallback_chat_template(self.info.architecture).encode()
        encoded = [(m["role"].encode(), m["content"].encode()) for m in messages]
        chat = (lib.llama_chat_message * len(encoded))(
            *[lib.llama_chat_message(role=r, content=c) for r, c in encoded]
        )
        size = 2 * sum(len(r) + len(c) for r, c in encoded) + 256
        for _ in range(2):
            buf = ctypes.create_string_buffer(size)
            n = lib.llama_chat_apply_template(template, chat, len(encoded), True, buf, size)
            if n < 0:
                raise UnsupportedModelError(
                    f"llama.cpp does not support the chat template of {self.info.path.name}",
                    hint="Give a prompt with -p to run it without a chat template.",
                )
            if n <= size:
                return bytes(buf.raw[:n]).decode("utf-8", errors="replace")
            size = n + 1
        raise RuntimeBackendError("llama_chat_apply_template kept growing its output")

    def generate(
        self,
        tokens: list[int],
        params: SamplingParams,
        on_token: TokenCallback | None = None,
    ) -> GenerationResult:
        lib, ctx = self.lib, self.llm.ctx
        max_tokens = min(params.max_tokens, self.n_ctx - len(tokens))
        self._set_threads(self.governor.before_turn())
        lib.llama_perf_context_reset(ctx)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        pieces: list[str] = []

        def emit(piece: str) -> None:
            if piece:
                pieces.append(piece)
                if on_token:
                    on_token(piece)

        sampler = NativeSampler(lib, ctx, self._vocab, params)
        n_sampled, n_generated, first_at, last_at, stop = 0, 0, None, 0.0, "length"
        start = time.perf_counter()
        try:
            self._eval_prompt(tokens)
            sampler.accept_prompt(tokens)
            while n_generated < max_tokens:
                token = sampler.sample()
                last_at = time.perf_counter()
                first_at = first_at or last_at
                n_sampled += 1
                if lib.llama_vocab_is_eog(self._vocab, token):
                    stop = "eos"
                    break
                n_generated += 1
                # Incremental decoding: a multi-byte character can span several tokens.
                emit(decoder.decode(self._piece(token)))
                if n_generated >= max_tokens:
                    break
                changed = self.governor.during_turn()
                if changed is not None:
                    self._set_threads(changed)
                self._eval([token])
        finally:
            sampler.close()
        emit(decoder.decode(b"", final=True))
        perf = lib.llama_perf_context(ctx)
        stats = GenerationStats(
            prompt_tokens=len(tokens),
            generated_tokens=n_generated,
            prompt_tokens_per_s=perf.n_p_eval / (perf.t_p_eval_ms / 1000)
            if perf.t_p_eval_ms > 0
            else 0.0,
            decode_tokens_per_s=decode_rate(n_sampled, first_at, last_at),
            time_to_first_token_s=(first_at - start) if first_at else 0.0,
            total_s=time.perf_counter() - start,
            peak_rss_bytes=peak_rss_bytes(),
            stop_reason=stop,
            threads=self.threads,
        )
        return GenerationResult("".join(pieces), stats)

    @property
    def threads(self) -> int:
        return int(self.lib.llama_n_threads(self.llm.ctx))

    def _set_threads(self, n: int) -> None:
        if n != self.threads:
            # Prompt batches scale with threads where decode barely does, but a busy core
            # stalls both alike, so both follow the load.
            self.lib.llama_set_n_threads(self.llm.ctx, n, n)

    def _eval_prompt(self, tokens: list[int]) -> None:
        """Evaluate what the KV cache does not already hold of `tokens` (chat turns share a
        prefix). The Llama object's input_ids/n_tokens say what the cache holds, so its own
        methods and the bias scorer (which resets it) stay consistent with this loop."""
        llm, lib = self.llm, self.lib
        held = [int(t) for t in llm.input_ids[: llm.n_tokens]]
        keep = 0
        for a, b in zip(held, tokens[:-1], strict=False):  # the last token is always re-run
            if a != b:
                break
            keep += 1
        mem = lib.llama_get_memory(llm.ctx)
        if keep == 0 or not lib.llama_memory_seq_rm(mem, 0, keep, -1):
            lib.llama_memory_clear(mem, True)
            keep = 0
        llm.n_tokens = keep
        for lo in range(keep, len(tokens), self._n_batch):
            self._eval(tokens[lo : lo + self._n_batch])

    def _eval(self, chunk: list[int]) -> None:
        llm = self.llm
        n = len(chunk)
        if n == 1:
            self._one[0] = chunk[0]
            arr = self._one
        else:
            arr = (self.lib.llama_token * n)(*chunk)
        rc = self.lib.llama_decode(llm.ctx, self.lib.llama_batch_get_one(arr, n))
        if rc != 0:
            llm.n_tokens = 0
            raise RuntimeBackendError(f"llama_decode failed (code {rc})")
        llm.input_ids[llm.n_tokens : llm.n_tokens + n] = chunk
        llm.n_tokens += n
