"""The llama.cpp back end, through llama-cpp-python. Imported only by commands that run a model."""

from __future__ import annotations

import codecs
import ctypes
import importlib
import time
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from edgekit.backends.base import (
    FloatArray,
    GenerationResult,
    GenerationStats,
    SamplingParams,
    TokenCallback,
    decode_rate,
)
from edgekit.devices import DeviceProfile
from edgekit.errors import (
    EmptyPromptError,
    PromptTooLongError,
    RuntimeBackendError,
    UnsupportedModelError,
)
from edgekit.gguf_file import ModelInfo
from edgekit.metrics import peak_rss_bytes

if TYPE_CHECKING:
    from edgekit.backends.base import HiddenStateSource, LogitSource
    from edgekit.backends.llama_cpp.adapters import LoraSlots

ChatMessage = dict[str, str]


def import_llama_cpp() -> ModuleType:
    try:
        return importlib.import_module("llama_cpp")
    except ImportError as e:
        raise RuntimeBackendError(
            f"llama-cpp-python is not installed or does not load: {e}",
            hint="Run scripts/setup.sh, which builds it with the right flags for this machine.",
        ) from None


def fallback_chat_template(architecture: str) -> str:
    """A llama.cpp built-in template name for models whose GGUF carries no chat template."""
    return "gemma" if architecture.startswith("gemma") else "chatml"


class LlamaCppRuntime:
    def __init__(
        self, info: ModelInfo, profile: DeviceProfile, n_ctx: int, verbose: bool = False
    ) -> None:
        self.lib = import_llama_cpp()
        self.info = info
        self.n_ctx = n_ctx
        try:
            self.llm: Any = self.lib.Llama(
                model_path=str(info.path),
                n_ctx=n_ctx,
                n_threads=profile.threads,
                n_threads_batch=profile.threads,
                n_gpu_layers=profile.gpu_layers,
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
            raise UnsupportedModelError(
                f"llama.cpp could not load {info.path.name} ({info.architecture}): {e}",
                hint="The architecture may be newer than this llama.cpp build; "
                "run with --verbose to see llama.cpp's log.",
            ) from None
        self._vocab = self.llm._model.vocab
        self._lora: LoraSlots | None = None
        self.notes: list[str] = []
        if profile.gpu_layers != 0 and not self.lib.llama_supports_gpu_offload():
            self.notes.append(
                f"this llama.cpp build has no GPU back end, so {profile.name}'s GPU layers run on "
                f"the CPU; rebuild with CMAKE_ARGS='{profile.cmake_args}'"
            )

    def close(self) -> None:
        self.llm.close()

    # Capability.SCORE and Capability.ADAPTERS: the work is in scoring.py, hidden.py, adapters.py.
    def logits(self) -> LogitSource:
        from edgekit.backends.llama_cpp.scoring import LlamaLogits

        return LlamaLogits(self.llm)

    def hidden_states(self, n_ctx: int = 256) -> HiddenStateSource:
        from edgekit.backends.llama_cpp.hidden import HiddenStateReader

        return HiddenStateReader(self.llm, n_ctx)

    def set_lora(self, path: Path | None, scale: float = 1.0) -> None:
        from edgekit.backends.llama_cpp.adapters import LoraSlots

        if self._lora is None:
            self._lora = LoraSlots(self.llm)
        self._lora.set(path, scale)

    def set_control_vector(self, matrix: FloatArray | None) -> None:
        from edgekit.backends.llama_cpp.adapters import apply_control

        apply_control(self.llm, matrix)

    def tokenize(self, text: str, add_bos: bool = True) -> list[int]:
        return list(self.llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=True))

    def prompt_tokens(self, text: str) -> list[int]:
        if not text.strip():
            raise EmptyPromptError("the prompt is empty", hint="Pass some text with -p.")
        tokens = self.tokenize(text)
        if len(tokens) >= self.n_ctx:
            raise PromptTooLongError(
                f"the prompt is {len(tokens)} tokens but the context holds {self.n_ctx}",
                hint=f"Shorten the prompt or raise the context (--ctx {2 * len(tokens)}), "
                f"up to the model's {self.info.context_length}.",
            )
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
        llm, lib = self.llm, self.lib
        max_tokens = min(params.max_tokens, self.n_ctx - len(tokens))
        llm.set_seed(params.seed)
        lib.llama_perf_context_reset(llm.ctx)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        pieces: list[str] = []

        def emit(piece: str) -> None:
            if piece:
                pieces.append(piece)
                if on_token:
                    on_token(piece)

        n_sampled, n_generated, first_at, last_at, stop = 0, 0, None, 0.0, "length"
        start = time.perf_counter()
        stream = llm.generate(
            tokens,
            top_k=params.top_k,
            top_p=params.top_p,
            min_p=params.min_p,
            temp=params.temperature,
            repeat_penalty=params.repeat_penalty,
        )
        for token in stream:
            last_at = time.perf_counter()
            first_at = first_at or last_at
            n_sampled += 1
            if lib.llama_vocab_is_eog(self._vocab, token):
                stop = "eos"
                break
            n_generated += 1
            # Incremental decoding: a multi-byte character can span several tokens.
            emit(decoder.decode(llm.detokenize([token], special=False)))
            if n_generated >= max_tokens:
                break
        stream.close()
        emit(decoder.decode(b"", final=True))
        perf = lib.llama_perf_context(llm.ctx)
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
        )
        return GenerationResult("".join(pieces), stats)
